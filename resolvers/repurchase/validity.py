"""Validity: a product may say how long a delivered unit stays valid (a 30-day card, a
season pass). The DELIVERED transition (resolvers/commerce/orders.py) writes the order's
``valid_until`` with it; the buyer lists what is about to run out; the shop sets the
product's validity and the period bounds of its plans.

A one-click renewal of an item (resolvers/repurchase/reminders.py ``renew_item``) carries
the idempotency key ``renew-<order id, 8 digits or more>[-n]``: its validity runs on from the renewed item's,
if that had not run out yet, so renewing early loses no day.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from models.commerce.catalog import Product
from models.commerce.orders import Order, OrderStatus
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor, require
from resolvers.accounts.permissions import Action
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import cache_tags

MAX_DAYS = 3660  # ten years
MAX_LISTED = 100
#: Statuses in which the buyer holds what was delivered.
HELD = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
_RENEWAL_KEY = re.compile(r"renew-([0-9]{1,19})(?:-[0-9]{1,3})?")


async def delivery_record(order: Order, delivered_at: datetime | None) -> dict[str, Any]:
    """The column the DELIVERED transition writes with it: ``valid_until`` from the
    product's validity (nothing for a product without one)."""
    days = await order.product_column("validity_days")
    if not days:
        return {}
    start = delivered_at or datetime.now(UTC)
    renewed = _RENEWAL_KEY.fullmatch(order.idempotency_key)
    if renewed is not None:
        previous = await Order.filter(
            id=int(renewed.group(1)), buyer_id=order.buyer_id, product_id=order.product_id
        ).first().values_list("valid_until", flat=True)
        if previous is not None and previous > start:
            start = previous
    return {"valid_until": start + timedelta(days=days)}


async def expiring(actor: Actor, within_days: int) -> list[Order]:
    """The viewer's delivered orders whose validity runs out within ``within_days`` (and has
    not yet), soonest first."""
    user = require(actor)
    if not 1 <= within_days <= 366:
        raise invalid("withinDays", "Look 1 to 366 days ahead.")
    now = datetime.now(UTC)
    return list(
        await Order.filter(
            buyer_id=user.id, status__in=HELD, valid_until__gt=now, valid_until__lte=now + timedelta(days=within_days)
        ).order_by("valid_until", "id").limit(MAX_LISTED)
    )


def _days(value: int | None, field: str) -> int | None:
    if value is not None and not 1 <= value <= MAX_DAYS:
        raise invalid(field, f"Give 1 to {MAX_DAYS} days, or null.")
    return value


async def set_terms(
    actor: Actor, product_id: int, *, validity_days: int | None, plan_min_days: int | None, plan_max_days: int | None
) -> Product:
    """The shop's owner (or an ADMIN) sets a product's validity and plan period bounds;
    null clears each. Both bounds or neither; min <= max."""
    product = await Product.filter(id=product_id).select_related("merchant").first()
    if product is None:
        require(actor)
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", "productId")
    permissions.require(actor, Action.UPDATE_PRODUCT, owner_id=product.merchant.owner_id)
    _days(validity_days, "validityDays")
    _days(plan_min_days, "planMinDays")
    _days(plan_max_days, "planMaxDays")
    if (plan_min_days is None) != (plan_max_days is None):
        raise invalid("planMaxDays", "Give both plan bounds, or neither.")
    if plan_min_days is not None and plan_max_days is not None and plan_min_days > plan_max_days:
        raise invalid("planMaxDays", "The longest period cannot be shorter than the shortest.")
    changes = {"validity_days": validity_days, "plan_min_days": plan_min_days, "plan_max_days": plan_max_days}
    await Product.filter(id=product.id).update(updated_at=datetime.now(UTC), **changes)
    cache_tags.touch(cache_tags.product(product.id))
    for name, value in changes.items():
        setattr(product, name, value)
    return product
