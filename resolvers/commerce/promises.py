"""Delivery promises, measured: each delivery's time from payment, and a shop's record.

A product promises delivery within N minutes of payment. At the DELIVERED transition the
order records how long it took (``delivery_seconds``) and the promise it was held to
(``promised_minutes``, the product's at that moment); a late order with a buyer gets a
``compensate_late_delivery`` job in the same transaction (paid in resolvers/trust/promises.py).

A shop's stats over the last ``delivery_promise_window_days`` come from one grouped query
for any number of shops: window functions rank each shop's deliveries by duration, and the
median and 95th percentile are nearest-rank percentiles (the smallest duration with at
least half, or 95 %, of the deliveries at or below it: always a real delivery's time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tortoise import connections

from kameng.settings import get_settings
from models.commerce.catalog import LateCompensation, Product
from models.commerce.orders import Order
from models.loyalty.coupons import Coupon, CouponScope
from models.statements import placeholders
from resolvers.commerce.inputs import bounded_int, parse_amount
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import jobs, outbox


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    delivered: int  # orders delivered in the window
    on_time: int  # of which within their promise
    median_seconds: int | None  # None when nothing was delivered
    p95_seconds: int | None

    @property
    def on_time_share(self) -> float | None:
        return self.on_time / self.delivered if self.delivered else None


def is_late(order: Order) -> bool:
    if order.delivery_seconds is None or order.promised_minutes is None:
        return False
    return order.delivery_seconds > order.promised_minutes * 60


async def delivery_record(order: Order, delivered_at: datetime | None) -> dict[str, Any]:
    """The columns the DELIVERED transition writes with it: how long delivery took from
    payment (from the claim, for a gift), and the promise it is measured against."""
    if order.paid_at is None:
        return {}
    delivered_at = delivered_at or datetime.now(UTC)
    promise = await order.product_column("delivery_promise_minutes")
    started = order.delivery_from or order.paid_at  # a gift is measured from its claim
    seconds = max(0, int((delivered_at - started).total_seconds()))
    return {"delivery_seconds": seconds, "promised_minutes": promise}


async def after_delivery(order: Order) -> None:
    """In the DELIVERED transaction: a late order of a signed-in buyer is queued for its
    compensation (the job decides what the product gives, if anything)."""
    if order.buyer_id is not None and is_late(order):
        await outbox.enqueue(jobs.compensate_late_delivery(order.id))


_STATS = """
WITH d AS (
  SELECT merchant_id, delivery_seconds AS s, promised_minutes AS p,
         ROW_NUMBER() OVER (PARTITION BY merchant_id ORDER BY delivery_seconds, id) AS rn,
         COUNT(*) OVER (PARTITION BY merchant_id) AS n
  FROM orders
  WHERE merchant_id IN ({ids}) AND delivered_at >= {since} AND delivery_seconds IS NOT NULL
)
SELECT merchant_id, MAX(n) AS n,
       SUM(CASE WHEN s <= p * 60 THEN 1 ELSE 0 END) AS on_time,
       MIN(CASE WHEN rn * 100 >= n * 50 THEN s END) AS median,
       MIN(CASE WHEN rn * 100 >= n * 95 THEN s END) AS p95
FROM d GROUP BY merchant_id
"""


def since_db_value(days: float, now: datetime | None = None) -> Any:
    """``now - days`` as the database stores ``delivered_at`` (SQLite compares text)."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    return Order._meta.fields_map["delivered_at"].to_db_value(since, Order)


async def delivery_stats(merchant_ids: list[int]) -> list[DeliveryStats]:
    """Batch load for DataLoaders: each shop's promise record over the window, one query."""
    connection = connections.get("default")
    dialect = connection.capabilities.dialect
    marks = placeholders(dialect, len(merchant_ids) + 1)
    sql = _STATS.format(ids=", ".join(marks[:-1]), since=marks[-1])
    _, rows = await connection.execute_query(sql, [*merchant_ids, since_db_value(get_settings().delivery_promise_window_days)])
    found = {
        int(row["merchant_id"]): DeliveryStats(
            delivered=int(row["n"]), on_time=int(row["on_time"]),
            median_seconds=int(row["median"]), p95_seconds=int(row["p95"]),
        )
        for row in rows
    }
    empty = DeliveryStats(delivered=0, on_time=0, median_seconds=None, p95_seconds=None)
    return [found.get(i, empty) for i in merchant_ids]


# -- what a product gives for a late delivery ---------------------------------------------

POINTS_MAX = 100_000
AMOUNT_MAX = Decimal("1000.00")


@dataclass(frozen=True, slots=True)
class CompensationSpec:
    """A late-delivery compensation as a merchant sets it; only the field of its kind counts."""

    kind: LateCompensation
    points: int | None = None
    amount: str | None = None  # decimal string
    coupon_id: int | None = None


async def compensation_fields(spec: CompensationSpec | None, merchant_id: int, product_id: int | None) -> dict[str, Any]:
    """The product columns for ``spec`` (None: no compensation). INVALID_INPUT (fields under
    ``lateCompensation``) or NOT_FOUND for a coupon that is not the shop's own: the shop
    pays, so it can only give what is its to give."""
    none: dict[str, Any] = {"late_compensation": LateCompensation.NONE, "late_compensation_points": 0,
                            "late_compensation_amount": Decimal("0.00"), "late_compensation_coupon_id": None}
    if spec is None or spec.kind == LateCompensation.NONE:
        return none
    if spec.kind == LateCompensation.POINTS:
        if spec.points is None:
            raise invalid("lateCompensation.points", "Say how many points a late order gets.")
        return {**none, "late_compensation": spec.kind,
                "late_compensation_points": bounded_int(spec.points, "lateCompensation.points", 1, POINTS_MAX)}
    if spec.kind == LateCompensation.AMOUNT:
        if spec.amount is None:
            raise invalid("lateCompensation.amount", "Say what amount a late order gets.")
        amount = parse_amount(spec.amount, "lateCompensation.amount")
        if amount > AMOUNT_MAX:
            raise invalid("lateCompensation.amount", f"At most {AMOUNT_MAX} per late order.")
        return {**none, "late_compensation": spec.kind, "late_compensation_amount": amount}
    if spec.coupon_id is None:
        raise invalid("lateCompensation.couponId", "Say which coupon a late order gets.")
    coupon = await Coupon.filter(id=spec.coupon_id).first()
    own = coupon is not None and (
        (coupon.scope == CouponScope.MERCHANT and coupon.scope_id == merchant_id)
        or (coupon.scope == CouponScope.PRODUCT and product_id is not None and coupon.scope_id == product_id)
    )
    if not own:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such coupon of this shop.", "lateCompensation.couponId")
    return {**none, "late_compensation": spec.kind, "late_compensation_coupon_id": spec.coupon_id}
