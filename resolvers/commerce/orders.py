"""Orders: creation (with its stock reserved), the one place that moves an order between
statuses, cancellation, expiry and its sweep, lookup and visibility.

Delivery is resolvers/commerce/delivery.py, paying payments.py and callbacks.py, completion
and refunds settlement.py; they all move the order through ``transition`` below."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import DoesNotExist, IntegrityError

from kameng import runtime
from kameng.security import hash_password, verify_password
from kameng.settings import get_settings
from models.commerce.catalog import PRODUCT_WITH_MERCHANT, DeliveryKind, ProductStatus
from models.commerce.merchants import MerchantStatus
from models.commerce.orders import (
    LAST_ORDER_EVENT, ORDER_BY_ID, ORDER_BY_REQUEST, ORDER_EVENTS, ORDER_IF_STATUS, ORDER_WITH_MERCHANT, ORDERS, Order,
    OrderEvent, OrderStatus, can_transition,
)
from resolvers.accounts import notifications, users
from resolvers.accounts.auth import Actor, allowed, require
from resolvers.accounts.users import normalise_email
from resolvers.commerce import inventory, pricing, promises
from resolvers.commerce.access import actor_label, is_buyer
from resolvers.loyalty import coupons, creators, points
from resolvers.repurchase import validity
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate
from subscriptions import outbox
from subscriptions import jobs, topics

IDEMPOTENCY_KEY_MAX = 80
LOOKUP_PASSWORD_MIN = 6
LOOKUP_PASSWORD_MAX = 128
TOPUP_ACCOUNT_MAX = 120  # Order.topup_account


topic_for = topics.order


def new_order_no() -> str:
    # Sortable by day, unguessable within it: K20261122-8H3K9QX2ZP
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"K{datetime.now(UTC):%Y%m%d}-" + "".join(secrets.choice(alphabet) for _ in range(10))


# -- the state machine's one door ------------------------------------------------------


async def transition(
    order: Order,
    target: OrderStatus,
    *,
    actor: str = "system",
    note: str = "",
    **changes: Any,
) -> bool:
    """Move ``order`` to ``target`` if it is still in the status we read; record the event.

    Must run inside ``outbox.atomic()``. The update is conditional on the current status, so
    of two concurrent attempts exactly one wins; the loser gets False and changes nothing.
    ``order`` is updated in place on success.
    """
    current = order.status
    if not can_transition(current, target):
        return False
    changes["updated_at"] = datetime.now(UTC)  # queryset updates do not touch auto_now fields
    if target == OrderStatus.DELIVERED:
        changes.update(await promises.delivery_record(order, changes.get("delivered_at")))
        changes.update(await validity.delivery_record(order, changes.get("delivered_at")))
    # The move and its event in one statement where the database allows it (issue 15: two of
    # them on every payment, and on every card-key delivery).
    event = OrderEvent(order_id=order.id, status=target, actor=actor, note=note[:300])
    if not await ORDER_IF_STATUS.run_then_insert({"status": target, **changes}, order.id, current,
                                                 then=ORDER_EVENTS, row=event):
        return False
    order.status = target
    for name, value in changes.items():
        setattr(order, name, value)
    await outbox.emit(
        topic_for(order.id),
        {"order": order.id, "event": event.id, "status": target.value, "at": event.at.isoformat(), "note": event.note},
    )
    await _trade(order, event)
    await _loyalty(order, target)
    if target == OrderStatus.DELIVERED:
        await promises.after_delivery(order)
    if order.buyer_id is not None and target in _NOTIFY:
        title = _NOTIFY[target].format(no=order.order_no)
        await notifications.notify(
            order.buyer_id, f"ORDER_{target.value}", title, note, {"orderId": order.id},
            dedupe_key=f"order:{order.id}:{target.value}:{event.id}",
        )
    return True


async def _trade(order: Order, event: OrderEvent) -> None:
    """The transition's trade-log leaf: the order by number, never by buyer."""
    await outbox.trade(
        {"event": "order", "order": order.order_no, "status": event.status.value, "amount": str(order.total),
         "currency": order.currency, "at": event.at.isoformat()},
        order_id=order.id,
    )


async def _loyalty(order: Order, target: OrderStatus) -> None:
    """In the transition's transaction: the coupon an order holds is USED once it is paid and
    goes back to its owner, with the points it spent, when the order is cancelled, expires or
    is refunded; completion and refund are loyalty events (workers/loyalty.py)."""
    if order.buyer_id is None:
        return
    if target == OrderStatus.PAID:
        await coupons.mark_used(order)
    elif target in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        await coupons.give_back(order)
        if order.points_used:
            await points.give_back_for_order(order.buyer_id, order.id)
    if target in (OrderStatus.COMPLETED, OrderStatus.REFUNDED):
        await outbox.enqueue(jobs.loyalty_event(order.buyer_id, f"ORDER_{target.value}", f"order:{order.id}"))
        await outbox.enqueue(jobs.refresh_rfm(order.buyer_id))  # lifecycle: the buyer's RFM and segment


_NOTIFY = {
    OrderStatus.PAID: "Payment received for order {no}",
    OrderStatus.DELIVERED: "Order {no} has been delivered",
    OrderStatus.FAILED: "Order {no} could not be delivered",
    OrderStatus.REFUNDED: "Order {no} was refunded",
    OrderStatus.COMPLETED: "Order {no} is complete",
}


# -- creation --------------------------------------------------------------------------


@dataclass(frozen=True)
class NewOrder:
    product_id: int
    quantity: int
    idempotency_key: str
    contact_email: str | None = None
    query_password: str | None = None
    topup_account: str | None = None
    coupon_code: str | None = None
    points_to_use: int = 0
    from_post_id: int | None = None


async def create_order(actor: Actor, request: NewOrder) -> Order:
    """Create an order and reserve its stock until it expires, or return the order that the
    same idempotency key already made."""
    key = request.idempotency_key.strip()
    if not 8 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise invalid("idempotencyKey", f"The idempotency key must be 8 to {IDEMPOTENCY_KEY_MAX} characters.")
    # Lengths first, whatever the product or the caller: nothing longer than its column (or
    # than a password worth hashing) goes further, not even to find a replayed order.
    if request.query_password is not None and len(request.query_password) > LOOKUP_PASSWORD_MAX:
        raise invalid("queryPassword", f"The query password has at most {LOOKUP_PASSWORD_MAX} characters.")
    if request.topup_account is not None and len(request.topup_account.strip()) > TOPUP_ACCOUNT_MAX:
        raise invalid("topupAccount", f"The account to top up has at most {TOPUP_ACCOUNT_MAX} characters.")
    if request.coupon_code is not None:
        coupons.lookup_code(request.coupon_code, "couponCode")
    contact_email = ""
    password_hash = ""
    if actor.user is None:
        if not request.contact_email or not request.query_password:
            raise invalid("contactEmail", "Guests give a contact email and a query password.")
        contact_email = normalise_email(request.contact_email, "contactEmail")
        if len(request.query_password) < LOOKUP_PASSWORD_MIN:
            raise invalid("queryPassword", f"The query password needs at least {LOOKUP_PASSWORD_MIN} characters.")
        scope = f"g:{contact_email}"
    else:
        scope = f"u:{actor.user.id}"
        if request.contact_email:
            contact_email = normalise_email(request.contact_email, "contactEmail")

    existing = await ORDER_BY_REQUEST.first(scope, key)
    if existing is not None:
        return _same_request(existing, request)

    product = await PRODUCT_WITH_MERCHANT.first(request.product_id)
    if product is None or product.status != ProductStatus.ACTIVE:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", "productId")
    if product.merchant.status != MerchantStatus.ACTIVE:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This shop is not selling at the moment.", "productId")
    if not product.min_quantity <= request.quantity <= product.max_quantity:
        raise invalid("quantity", f"Order between {product.min_quantity} and {product.max_quantity}.")
    topup_account = (request.topup_account or "").strip()
    if product.delivery_kind == DeliveryKind.DIRECT_TOPUP and not topup_account:
        raise invalid("topupAccount", f"Give the account to top up (at most {TOPUP_ACCOUNT_MAX} characters).")
    if request.from_post_id is not None:
        await creators.visible_post(request.from_post_id)
    # The one pricing engine: what priceQuote shows is what is charged.
    priced = await pricing.price(
        actor,
        pricing.PriceRequest(product.id, request.quantity, request.coupon_code, request.points_to_use),
        product=product,
    )
    quote = priced.quote
    if request.query_password:
        password_hash = hash_password(request.query_password)

    settings = get_settings()
    now = datetime.now(UTC)
    try:
        async with outbox.atomic():
            if actor.user is not None and not await users.still_active(actor.user.id):  # deleted meanwhile
                raise UserFacingError(ErrorCode.UNAUTHENTICATED, "This account no longer exists.")
            order = Order(
                order_no=new_order_no(),
                buyer_id=actor.user_id,
                product_id=product.id,
                merchant_id=product.merchant_id,
                quantity=request.quantity,
                unit_price=quote.unit_price,
                tier_discount=quote.tier_discount,
                coupon_discount=quote.coupon_discount,
                user_coupon_id=priced.user_coupon.id if priced.user_coupon is not None else None,
                points_used=quote.points_used,
                points_discount=quote.points_discount,
                total=quote.total,
                from_post_id=request.from_post_id,
                currency=product.currency,
                idempotency_scope=scope,
                idempotency_key=key,
                contact_email=contact_email,
                query_password_hash=password_hash,
                topup_account=topup_account,
                expires_at=now + timedelta(seconds=settings.order_reservation_seconds),
            )
            # The order and its first event in one statement where the database allows it.
            event = OrderEvent(status=order.status, actor=actor_label(actor), note="created")
            await ORDERS.run_with(order, then=ORDER_EVENTS, child=event, link="order_id")
            await inventory.reserve(order, product)
            if priced.user_coupon is not None:
                await coupons.lock_for_order(priced.user_coupon.id, order.id)
            if quote.points_used and actor.user is not None:
                await points.spend_for_order(actor.user.id, order.id, quote.points_used)
            await outbox.emit(
                topic_for(order.id),
                {"order": order.id, "event": event.id, "status": order.status.value, "at": event.at.isoformat(), "note": "created"},
            )
            await _trade(order, event)
            # No timer job per order: the expiry sweep (sweep_expired, every KAMENG_SWEEP_SECONDS in
            # each job-consuming process) cancels it within that of expires_at. A timer per order
            # was one more job run per order, a reservation later, paid or not, and every worker
            # held a reservation's worth of delayed messages in memory.
    except IntegrityError:
        # The same idempotency key, concurrently: the other request made the order.
        existing = await Order.filter(idempotency_scope=scope, idempotency_key=key).first()
        if existing is None:
            raise
        return _same_request(existing, request)
    return order


def _same_request(order: Order, request: NewOrder) -> Order:
    if order.product_id != request.product_id or order.quantity != request.quantity:
        raise UserFacingError(
            ErrorCode.DUPLICATE, "This idempotency key was used for a different order.", "idempotencyKey"
        )
    return order


# -- buyer actions and timers ----------------------------------------------------------


async def cancel_order(actor: Actor, order_id: int) -> Order:
    order = await visible_order(actor, order_id)
    if order is None or not is_buyer(actor, order):
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    async with outbox.atomic():
        if not await transition(order, OrderStatus.CANCELLED, actor=actor_label(actor), note="cancelled by the buyer"):
            raise UserFacingError(ErrorCode.INVALID_STATE, f"An order that is {order.status.value} cannot be cancelled.")
        await inventory.release(order)
    return order


async def expire_order(order_id: int) -> bool:
    """Cancel an unpaid order whose reservation ran out and release its stock (idempotent)."""
    order = await Order.filter(id=order_id).first()
    if order is None or order.status != OrderStatus.PENDING_PAYMENT or order.expires_at > datetime.now(UTC):
        return False
    async with outbox.atomic():
        if not await transition(order, OrderStatus.CANCELLED, note="payment time ran out"):
            return False
        await inventory.release(order)
    return True


async def expired_unpaid(limit: int = 500) -> list[int]:
    now = datetime.now(UTC)
    rows = await Order.filter(status=OrderStatus.PENDING_PAYMENT, expires_at__lte=now).limit(limit).values_list("id")
    return [row[0] for row in rows]


async def sweep_expired(batch: int = 500) -> int:
    """Every unpaid order past its time: how orders expire (no timer job per order, see create_order).
    Batch after batch until one comes back short: abandoned checkouts arriving faster than a batch
    per sweep must not pile up, holding stock."""
    expired = 0
    while True:
        due = await expired_unpaid(batch)
        done = sum([await expire_order(order_id) for order_id in due])
        expired += done
        if len(due) < batch or not done:  # short, or nothing moved (another sweep is on it): next time
            return expired


# -- who may see an order --------------------------------------------------------------


async def visible_order(actor: Actor, order_id: int) -> Order | None:
    """The order, if the actor is its buyer, its merchant's owner, or staff; else None."""
    if actor.user is None:
        return None
    order = await ORDER_WITH_MERCHANT.first(order_id)
    return order if order is not None and _may_see(actor, order) else None


async def visible_orders(actor: Actor, order_ids: list[int]) -> list[Order | None]:
    """``visible_order`` for many ids, in one query, in the order asked."""
    if actor.user is None:
        return [None] * len(order_ids)
    found = {o.id: o for o in await Order.filter(id__in=order_ids).select_related("merchant")}
    return [order if order is not None and _may_see(actor, order) else None for order in (found.get(i) for i in order_ids)]


def _may_see(actor: Actor, order: Order) -> bool:
    return is_buyer(actor, order) or allowed(actor, owner_id=order.merchant.owner_id)


async def order_to_follow(actor: Actor, order_id: int, credentials: tuple[str, str] | None = None) -> Order:
    """The order whose live status the actor may follow: one they may see, or a guest order
    whose lookup credentials (order number, password) they give. UNAUTHENTICATED for an
    anonymous actor without credentials, FORBIDDEN otherwise."""
    order = await visible_order(actor, order_id)
    if order is None and credentials is not None:
        guest = await lookup(actor, *credentials)
        order = guest if guest is not None and guest.id == order_id else None
    if order is None:
        if actor.user is None and credentials is None:
            require(actor)
        raise UserFacingError(ErrorCode.FORBIDDEN, "You cannot follow this order.")
    return order


async def lookup(actor: Actor, order_no: str, password: str) -> Order | None:
    """Guest lookup by order number and query password, rate-limited against guessing."""
    limiter = runtime.limiter()
    limit = get_settings().order_lookup_limit
    ip_ok = await limiter.hit(limit, "lookup:ip", actor.ip or "-")
    no_ok = await limiter.hit(limit, "lookup:order", order_no.strip()[:32])
    if not (ip_ok and no_ok):
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many lookups; wait a minute and try again.")
    order = await Order.filter(order_no=order_no.strip()[:32]).first()
    if not verify_password(order.query_password_hash if order and order.query_password_hash else None, password):
        return None
    return order


async def list_for_buyer(actor: Actor, *, status: OrderStatus | None = None, **page: Any) -> Page[Order]:
    user = require(actor)
    queryset = Order.filter(buyer_id=user.id)
    if status is not None:
        queryset = queryset.filter(status=status)
    return await paginate(queryset, **page)


async def events_of(order_ids: list[int]) -> list[list[OrderEvent]]:
    """Batch load for DataLoaders: every order's events, oldest first, in one query."""
    grouped: dict[int, list[OrderEvent]] = {i: [] for i in order_ids}
    for event in await OrderEvent.filter(order_id__in=order_ids).order_by("id"):
        grouped[event.order_id].append(event)
    return [grouped[i] for i in order_ids]


async def current(order_id: int) -> Order:
    """The order as it is now, read afresh: a subscription outlives any request cache."""
    order = await ORDER_BY_ID.first(order_id)
    if order is None:
        raise DoesNotExist(Order)
    return order


async def last_event(order_id: int) -> OrderEvent | None:
    return await LAST_ORDER_EVENT.first(order_id)
