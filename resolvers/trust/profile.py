"""A shop's trust profile: the numbers buyers look for before they trust a shop, computed
live for any number of shops in a fixed number of queries (DataLoader batches).

Over the last ``delivery_promise_window_days`` (30 by default):

* delivery times: resolvers/commerce/promises.delivery_stats (median, p95, share on time);
* tickets opened in the window, and the median and 95th percentile of their first-response
  time (the shop's or staff's first message) and of their resolution time (RESOLVED ones;
  withdrawn or closed ones do not count as resolved), nearest-rank like the delivery times;
* of the orders paid in the window: the share with a ticket (dispute rate) and the share
  REFUNDED (refund rate), null when none were paid;

and, whatever their age, the deposit the platform holds (ledger) and the verified review
rating: the average of the VISIBLE reviews by verified buyers of the shop's products
(``Product.rating_sum``/``review_count``, kept by resolvers/community/posts.py), null when
there is none.
"""

from __future__ import annotations

from dataclasses import dataclass

from tortoise import connections
from tortoise.functions import Sum

from kameng.settings import get_settings
from models.commerce.catalog import Product
from models.statements import placeholders
from resolvers.commerce.promises import since_db_value


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    median_seconds: int | None
    p95_seconds: int | None


NONE = Percentiles(0, None, None)


@dataclass(frozen=True, slots=True)
class TrustNumbers:
    tickets_opened: int
    first_response: Percentiles  # count: tickets answered
    resolution: Percentiles  # count: tickets resolved
    orders_paid: int
    orders_disputed: int
    orders_refunded: int
    review_count: int
    review_rating: float | None

    @property
    def dispute_rate(self) -> float | None:
        return self.orders_disputed / self.orders_paid if self.orders_paid else None

    @property
    def refund_rate(self) -> float | None:
        return self.orders_refunded / self.orders_paid if self.orders_paid else None


_TICKETS = """
SELECT merchant_id, COUNT(*) AS n FROM ticket WHERE merchant_id IN ({ids}) AND created_at >= {since}
GROUP BY merchant_id
"""

# One measure per row (f: first response, r: resolution), ranked within (shop, measure).
_TIMES = """
WITH m AS (
  SELECT merchant_id, 'f' AS k, first_response_seconds AS s FROM ticket
  WHERE merchant_id IN ({ids}) AND created_at >= {since} AND first_response_seconds IS NOT NULL
  UNION ALL
  SELECT merchant_id, 'r' AS k, resolution_seconds AS s FROM ticket
  WHERE merchant_id IN ({ids2}) AND created_at >= {since2} AND status = 'RESOLVED' AND resolution_seconds IS NOT NULL
), d AS (
  SELECT merchant_id, k, s,
         ROW_NUMBER() OVER (PARTITION BY merchant_id, k ORDER BY s) AS rn,
         COUNT(*) OVER (PARTITION BY merchant_id, k) AS n
  FROM m
)
SELECT merchant_id, k, MAX(n) AS n,
       MIN(CASE WHEN rn * 100 >= n * 50 THEN s END) AS median,
       MIN(CASE WHEN rn * 100 >= n * 95 THEN s END) AS p95
FROM d GROUP BY merchant_id, k
"""

_ORDERS = """
SELECT o.merchant_id, COUNT(*) AS n,
       SUM(CASE WHEN o.status = 'REFUNDED' THEN 1 ELSE 0 END) AS refunded,
       SUM(CASE WHEN EXISTS (SELECT 1 FROM ticket t WHERE t.order_id = o.id) THEN 1 ELSE 0 END) AS disputed
FROM orders o
WHERE o.merchant_id IN ({ids}) AND o.paid_at IS NOT NULL AND o.paid_at >= {since}
GROUP BY o.merchant_id
"""


async def trust_numbers(merchant_ids: list[int]) -> list[TrustNumbers]:
    """Batch load for DataLoaders: four queries for any number of shops."""
    if not merchant_ids:
        return []
    connection = connections.get("default")
    dialect = connection.capabilities.dialect
    since = since_db_value(get_settings().delivery_promise_window_days)
    n = len(merchant_ids)
    marks = placeholders(dialect, n + 1)
    one = {"ids": ", ".join(marks[:-1]), "since": marks[-1]}
    params = [*merchant_ids, since]

    _, rows = await connection.execute_query(_TICKETS.format(**one), params)
    opened = {int(r["merchant_id"]): int(r["n"]) for r in rows}

    second = placeholders(dialect, n + 1, start=n + 2)
    sql = _TIMES.format(**one, ids2=", ".join(second[:-1]), since2=second[-1])
    _, rows = await connection.execute_query(sql, params + params)
    times = {(int(r["merchant_id"]), r["k"]): Percentiles(int(r["n"]), int(r["median"]), int(r["p95"]))
             for r in rows}

    _, rows = await connection.execute_query(_ORDERS.format(**one), params)
    orders = {int(r["merchant_id"]): (int(r["n"]), int(r["disputed"] or 0), int(r["refunded"] or 0)) for r in rows}

    reviews = {
        int(r["merchant_id"]): (int(r["ratings"] or 0), int(r["reviews"] or 0))
        for r in await Product.filter(merchant_id__in=merchant_ids).group_by("merchant_id")
        .annotate(ratings=Sum("rating_sum"), reviews=Sum("review_count")).values("merchant_id", "ratings", "reviews")
    }

    result = []
    for m in merchant_ids:
        paid, disputed, refunded = orders.get(m, (0, 0, 0))
        ratings, count = reviews.get(m, (0, 0))
        result.append(TrustNumbers(
            tickets_opened=opened.get(m, 0), first_response=times.get((m, "f"), NONE),
            resolution=times.get((m, "r"), NONE), orders_paid=paid, orders_disputed=disputed,
            orders_refunded=refunded, review_count=count, review_rating=round(ratings / count, 2) if count else None,
        ))
    return result
