"""A shop's back office view of its sales: its orders (filtered, keyset-paged, manual orders
due soon first) and its statistics per day and per product.

Both are for the shop's owner and staff (``READ_SHOP_PRIVATE``); others get None.

**Order list order.** First the MANUAL orders waiting for the merchant (DELIVERING with a
``delivery_due_at``), the soonest deadline first; then every other order, newest first. A
cursor names its section and its row's key (``["due", deadline, id]`` or ``["rest", id]``),
so a page boundary stays put as orders arrive.

**Statistics** (orders paid in ``[since, until)``, by the day of payment in UTC): paid orders,
GMV (what buyers paid, refunded orders included), refunds (orders since refunded, and their
amount), average delivery time (payment to delivery, delivered orders), and the repurchase
rate: of the signed-in buyers who paid in the window, the share who paid for more than one
order (per product: more than one order of that product). A fixed number of aggregate
queries (five), whatever the number of orders.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from tortoise import connections
from tortoise.expressions import Q

from models.commerce.catalog import DeliveryKind
from models.commerce.merchants import Merchant
from models.commerce.orders import Order, OrderStatus
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.errors import invalid
from resolvers.pagination import Page, page_size

MAX_STATS_DAYS = 366
DEFAULT_STATS_DAYS = 30


def may_read(actor: Actor, merchant: Merchant) -> bool:
    return permissions.allowed(actor, Action.READ_SHOP_PRIVATE, owner_id=merchant.owner_id)


# -- orders -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: OrderStatus | None = None
    product_id: int | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    delivery_kind: DeliveryKind | None = None


def _filtered(merchant_id: int, spec: OrderFilter) -> Any:
    query = Order.filter(merchant_id=merchant_id)
    if spec.status is not None:
        query = query.filter(status=spec.status)
    if spec.product_id is not None:
        query = query.filter(product_id=spec.product_id)
    if spec.since is not None:
        query = query.filter(created_at__gte=spec.since)
    if spec.until is not None:
        query = query.filter(created_at__lt=spec.until)
    if spec.delivery_kind is not None:
        query = query.filter(product__delivery_kind=spec.delivery_kind)
    return query


_DUE = Q(status=OrderStatus.DELIVERING, delivery_due_at__isnull=False)
_REST = Q(delivery_due_at__isnull=True) | ~Q(status=OrderStatus.DELIVERING)


def _cursor(row: Order) -> str:
    if row.status == OrderStatus.DELIVERING and row.delivery_due_at is not None:
        key: list[Any] = ["due", row.delivery_due_at.astimezone(UTC).isoformat(), row.id]
    else:
        key = ["rest", row.id]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, datetime | None, int]:
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if key[0] == "due" and len(key) == 3 and type(key[2]) is int:
            return "due", datetime.fromisoformat(key[1]), key[2]
        if key[0] == "rest" and len(key) == 2 and type(key[1]) is int:
            return "rest", None, key[1]
        raise ValueError
    except (ValueError, TypeError, IndexError, binascii.Error, orjson.JSONDecodeError):
        raise invalid("after", "The cursor is not one this API handed out for this list.") from None


async def merchant_orders(actor: Actor, merchant: Merchant, spec: OrderFilter, *, first: int | None,
                          after: str | None) -> Page[Order] | None:
    """One page of the shop's orders (forward only: ``first``/``after``)."""
    if not may_read(actor, merchant):
        return None
    _, size = page_size(first, None)
    base = _filtered(merchant.id, spec)
    section, due_at, last_id = _decode(after) if after is not None else ("due", None, 0)
    rows: list[Order] = []
    if section == "due":
        due = base.filter(_DUE)
        if due_at is not None:
            due = due.filter(Q(delivery_due_at__gt=due_at) | Q(delivery_due_at=due_at, id__gt=last_id))
        rows = list(await due.order_by("delivery_due_at", "id").limit(size + 1))
    if len(rows) <= size:
        rest = base.filter(_REST)
        if section == "rest":
            rest = rest.filter(id__lt=last_id)
        rows += list(await rest.order_by("-id").limit(size + 1 - len(rows)))
    more = len(rows) > size
    rows = rows[:size]
    return Page(items=rows, cursors=[_cursor(r) for r in rows], has_next=more, has_previous=after is not None,
                total=base)


# -- statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    orders: int
    gmv: Decimal
    refunds: int
    refunded: Decimal
    average_delivery_seconds: int | None
    buyers: int = 0
    repeat_buyers: int = 0

    @property
    def repurchase_rate(self) -> float | None:
        return self.repeat_buyers / self.buyers if self.buyers else None


@dataclass(frozen=True, slots=True)
class SalesStats:
    since: datetime
    until: datetime
    total: Figures
    days: list[tuple[date, Figures]]
    products: list[tuple[int, Figures]]


_FIGURES = """COUNT(*) AS orders,
  COALESCE(SUM(CAST(ROUND(total * 100) AS BIGINT)), 0) AS gmv_fen,
  COALESCE(SUM(CASE WHEN status = 'REFUNDED' THEN 1 ELSE 0 END), 0) AS refunds,
  COALESCE(SUM(CASE WHEN status = 'REFUNDED' THEN CAST(ROUND(total * 100) AS BIGINT) ELSE 0 END), 0) AS refunded_fen,
  AVG(delivery_seconds) AS avg_delivery"""
_WHERE = "FROM orders WHERE merchant_id = {0} AND paid_at >= {1} AND paid_at < {2}"
_REPEAT = """SELECT {key} COUNT(*) AS buyers, COALESCE(SUM(CASE WHEN n > 1 THEN 1 ELSE 0 END), 0) AS repeaters
FROM (SELECT {key} buyer_id, COUNT(*) AS n {where} AND buyer_id IS NOT NULL GROUP BY {key} buyer_id) b {group}"""


def _figures(row: dict[str, Any], repeat: dict[str, Any] | None = None) -> Figures:
    average = row["avg_delivery"]
    return Figures(
        orders=int(row["orders"]), gmv=Decimal(int(row["gmv_fen"])) / 100, refunds=int(row["refunds"]),
        refunded=Decimal(int(row["refunded_fen"])) / 100,
        average_delivery_seconds=round(float(average)) if average is not None else None,
        buyers=int(repeat["buyers"]) if repeat else 0, repeat_buyers=int(repeat["repeaters"]) if repeat else 0,
    )


async def sales_stats(actor: Actor, merchant: Merchant, since: datetime | None = None,
                      until: datetime | None = None) -> SalesStats | None:
    if not may_read(actor, merchant):
        return None
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=DEFAULT_STATS_DAYS)
    if since >= until or until - since > timedelta(days=MAX_STATS_DAYS):
        raise invalid("since", f"A window of at most {MAX_STATS_DAYS} days, ending after it starts.")
    connection = connections.get("default")
    postgres = connection.capabilities.dialect == "postgres"
    marks = ["$1", "$2", "$3"] if postgres else ["?", "?", "?"]
    where = _WHERE.format(*marks)
    paid_at = Order._meta.fields_map["paid_at"]
    args = [merchant.id, paid_at.to_db_value(since, Order), paid_at.to_db_value(until, Order)]
    day = "to_char(paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if postgres else "substr(paid_at, 1, 10)"

    async def rows(sql: str) -> list[dict[str, Any]]:
        _, found = await connection.execute_query(sql, args)
        return [dict(r) for r in found]

    (total,) = await rows(f"SELECT {_FIGURES} {where}")
    (overall,) = await rows(_REPEAT.format(key="", where=where, group=""))
    by_day = await rows(f"SELECT {day} AS day, {_FIGURES} {where} GROUP BY {day} ORDER BY day")
    by_product = await rows(f"SELECT product_id, {_FIGURES} {where} GROUP BY product_id ORDER BY product_id")
    repeats = {int(r["product_id"]): r for r in await rows(
        _REPEAT.format(key="product_id,", where=where, group="GROUP BY product_id"))}
    return SalesStats(
        since=since, until=until, total=_figures(total, overall),
        days=[(date.fromisoformat(str(r["day"])), _figures(r)) for r in by_day],
        products=[(int(r["product_id"]), _figures(r, repeats.get(int(r["product_id"])))) for r in by_product],
    )
