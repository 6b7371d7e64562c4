"""The retention metrics' SQL: a handful of grouped queries, one per family of metrics, the same
on SQLite and PostgreSQL except for the date functions, which ``Dialect`` spells per database.

Nothing here loops over users in Python: every query returns one row per month, per cohort and
age, or a single row of sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import connections

from models.commerce.orders import Order, OrderStatus
from models.discovery.events import EventKind

#: An order counts as a purchase once paid, unless it was refunded or failed.
PURCHASED = (OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
#: Client events that show a user came by: a visit is a (user, UTC day) with any of them.
VISIT_KINDS = (EventKind.PAGE_VISIT, EventKind.PRODUCT_VIEW, EventKind.POST_VIEW, EventKind.SEARCH)


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str

    def mark(self, n: int) -> str:
        """The n-th (1-based) parameter placeholder."""
        return f"${n}" if self.name == "postgres" else "?"

    def days(self, expr: str) -> str:
        """A timestamp as a number of days (fractional), for differences."""
        if self.name == "postgres":
            return f"(EXTRACT(EPOCH FROM {expr}) / 86400.0)"
        return f"julianday({expr})"

    def month(self, expr: str) -> str:
        """A timestamp's UTC month as one integer: year * 12 + month - 1."""
        if self.name == "postgres":
            utc = f"({expr} AT TIME ZONE 'UTC')"
            return f"(CAST(EXTRACT(YEAR FROM {utc}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {utc}) AS INTEGER) - 1)"
        return f"(CAST(strftime('%Y', {expr}) AS INTEGER) * 12 + CAST(strftime('%m', {expr}) AS INTEGER) - 1)"

    def day(self, expr: str) -> str:
        """A timestamp's UTC calendar day."""
        if self.name == "postgres":
            return f"CAST({expr} AT TIME ZONE 'UTC' AS DATE)"
        return f"date({expr})"

    def within_a_day_before(self, earlier: str, later: str) -> str:
        """``earlier`` falls in the 24 hours up to ``later``."""
        if self.name == "postgres":
            return f"{earlier} <= {later} AND {earlier} > {later} - INTERVAL '24 hours'"
        return f"julianday({earlier}) <= julianday({later}) AND julianday({earlier}) > julianday({later}) - 1"


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)  # enum values only: never user input


def _purchases(d: Dialect) -> str:
    """Purchases of buyers who let their data be used (personalisation on: deleted accounts
    have it off); a visit is an event still linked to a user, which an opt-out unlinks."""
    return f"""p AS (
  SELECT o.buyer_id AS u, o.paid_at AS at, o.total AS amount, pr.category_id AS cat, {d.month('o.paid_at')} AS m
  FROM orders o JOIN product pr ON pr.id = o.product_id JOIN "user" b ON b.id = o.buyer_id AND b.personalisation
  WHERE o.buyer_id IS NOT NULL AND o.paid_at IS NOT NULL AND o.status IN ({_in(PURCHASED)})
)"""


def db_time(value: datetime) -> Any:
    """``value`` as the database stores order and event times (SQLite compares text)."""
    return Order._meta.fields_map["paid_at"].to_db_value(value, Order)


async def _rows(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    _, rows = await connections.get("default").execute_query(sql, params)
    return [dict(row) for row in rows]


def dialect() -> Dialect:
    return Dialect(connections.get("default").capabilities.dialect)


async def buyer_totals(d: Dialect, start: datetime, end: datetime) -> dict[str, Any]:
    """Buyers of the period, repeaters, single-purchase buyers, cross-category buyers and the
    summed gaps between consecutive purchases (a buyer's gaps add up to last minus first)."""
    sql = f"""WITH {_purchases(d)}
SELECT COUNT(*) AS buyers,
       COALESCE(SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END), 0) AS repeaters,
       COALESCE(SUM(CASE WHEN n = 1 THEN 1 ELSE 0 END), 0) AS singles,
       COALESCE(SUM(CASE WHEN cats >= 2 THEN 1 ELSE 0 END), 0) AS cross_buyers,
       COALESCE(SUM(CASE WHEN n >= 2 THEN span ELSE 0 END), 0) AS gap_days,
       COALESCE(SUM(CASE WHEN n >= 2 THEN n - 1 ELSE 0 END), 0) AS gaps
FROM (SELECT u, COUNT(*) AS n, COUNT(DISTINCT cat) AS cats, {d.days('MAX(at)')} - {d.days('MIN(at)')} AS span
      FROM p WHERE at >= {d.mark(1)} AND at < {d.mark(2)} GROUP BY u) b"""
    (row,) = await _rows(sql, [db_time(start), db_time(end)])
    return row


async def cohort_cells(d: Dialect, first_month: int, last_month: int) -> list[dict[str, Any]]:
    """Per cohort (month of a buyer's first purchase ever) and age k in months: how many of its
    buyers bought in month cohort + k, and their revenue that month."""
    sql = f"""WITH {_purchases(d)}, f AS (SELECT u, MIN(m) AS c FROM p GROUP BY u)
SELECT f.c AS cohort, p.m - f.c AS k, COUNT(DISTINCT p.u) AS buyers, SUM(p.amount) AS revenue
FROM p JOIN f ON f.u = p.u
WHERE f.c >= {d.mark(1)} AND f.c <= {d.mark(2)} AND p.m <= {d.mark(3)}
GROUP BY f.c, p.m - f.c ORDER BY f.c, p.m - f.c"""
    return await _rows(sql, [first_month, last_month, last_month])


async def monthly_visits(d: Dialect, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per month: visits (distinct user-days) and visiting users."""
    sql = f"""SELECT m, COUNT(*) AS visits, COUNT(DISTINCT user_id) AS users FROM (
  SELECT DISTINCT user_id, {d.day('occurred_at')} AS day, {d.month('occurred_at')} AS m FROM behaviour_event
  WHERE user_id IS NOT NULL AND kind IN ({_in(VISIT_KINDS)}) AND occurred_at >= {d.mark(1)} AND occurred_at < {d.mark(2)}
) v GROUP BY m ORDER BY m"""
    return await _rows(sql, [db_time(start), db_time(end)])


async def unprompted_visitors(d: Dialect, start: datetime, end: datetime) -> dict[str, Any]:
    """Visiting users, their visiting user-months, and the user-months with at least one visit
    event that no notification to the user preceded within 24 hours."""
    prompted = d.within_a_day_before("n.created_at", "e.occurred_at")
    sql = f"""SELECT COUNT(DISTINCT user_id) AS visitors, COUNT(*) AS user_months,
       COALESCE(SUM(unprompted), 0) AS unprompted FROM (
  SELECT e.user_id, {d.month('e.occurred_at')} AS m,
         MAX(CASE WHEN NOT EXISTS (
           SELECT 1 FROM notification n WHERE n.user_id = e.user_id AND {prompted}
         ) THEN 1 ELSE 0 END) AS unprompted
  FROM behaviour_event e
  WHERE e.user_id IS NOT NULL AND e.kind IN ({_in(VISIT_KINDS)})
    AND e.occurred_at >= {d.mark(1)} AND e.occurred_at < {d.mark(2)}
  GROUP BY e.user_id, {d.month('e.occurred_at')}
) um"""
    (row,) = await _rows(sql, [db_time(start), db_time(end)])
    return row
