"""Gifts (礼物赠送): a signed-in buyer buys a card-key product for someone else — a user they
name, or whoever they pass a claim code to — with a message.

The gift is an ordinary order of the sender, paid from their wallet (``Payment.payer_id`` is the
sender), and held: ``Order.awaiting_claim`` stops delivery (resolvers/commerce/delivery.py)
until the recipient claims. The claim is a conditional PENDING -> CLAIMED update, so a gift is
claimed once whatever the races; it makes the recipient the order's buyer, starts the delivery
clock (``delivery_from``) and queues delivery, so the keys go to the recipient only. The sender
keeps seeing the gift (``CLAIMED``, by whom, when) but no longer the order, and never a key:
nothing was delivered while the order was theirs.

Unclaimed after ``gift_claim_days``, a sweep returns it: RETURNED, the order refunded to the
sender's wallet and its reserved stock released, in one transaction.

Only card-key products can be given: a top-up needs the recipient's account at ordering, and a
manual delivery the merchant's work for a buyer who may never come.

The claim code is not stored: it is an HMAC of the gift's order under the server's fingerprint
key (so the sender can be shown it again), and the gift keeps only its SHA-256 to find it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kameng import crypto, runtime
from kameng.security import digest
from kameng.settings import get_settings
from models.accounts.users import User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.gifts import Gift, GiftStatus
from models.commerce.orders import Order, OrderStatus
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.commerce import inventory, ledger, orders, payments, pricing, settlement
from resolvers.commerce.inputs import clean_text
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import jobs, outbox

MESSAGE_MAX = 200
CODE_LENGTH = 20


@dataclass(frozen=True)
class NewGift:
    product_id: int
    quantity: int
    idempotency_key: str
    recipient_id: int | None = None
    message: str = ""


def claim_code(order_id: int) -> str:
    raw = crypto.box().fingerprint(f"gift-claim:{order_id}", product_id=0)
    return raw[:CODE_LENGTH].upper()


def _digest(code: str) -> str:
    return digest(code.strip().upper())


async def send(actor: Actor, request: NewGift) -> Gift:
    """Buy ``request`` as a gift, paid from the sender's wallet at once (INSUFFICIENT_BALANCE
    changes nothing). The same idempotency key returns the same gift."""
    sender = require(actor)
    message = clean_text(request.message, "message", minimum=0, maximum=MESSAGE_MAX, multiline=True)
    if request.recipient_id is not None:
        recipient = await User.filter(id=request.recipient_id, is_active=True).first()
        if recipient is None:
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such user.", "recipientId")
        if recipient.id == sender.id:
            raise invalid("recipientId", "A gift is for someone else: buy it for yourself with createOrder.")
    kind = await Product.filter(id=request.product_id).first().values_list("delivery_kind", flat=True)
    if kind is not None and kind != DeliveryKind.CARD_KEY:
        raise invalid("productId", "Only card-key products can be given as gifts.")
    key = request.idempotency_key.strip()
    if not 8 <= len(key) <= orders.IDEMPOTENCY_KEY_MAX:  # before a query compares it with the column
        raise invalid("idempotencyKey", f"The idempotency key must be 8 to {orders.IDEMPOTENCY_KEY_MAX} characters.")
    replay = await Order.filter(idempotency_scope=f"u:{sender.id}", idempotency_key=key).first()
    if replay is not None and (existing := await Gift.filter(order_id=replay.id).first()) is not None:
        return existing
    if replay is None:
        # What the wallet cannot cover is refused before any order is made (a concurrent
        # spend that gets in between is caught by the payment, which cancels the order).
        quote = (await pricing.price(actor, pricing.PriceRequest(request.product_id, request.quantity))).quote
        if await ledger.balance(ledger.wallet(sender.id)) < quote.total:
            raise UserFacingError(ErrorCode.INSUFFICIENT_BALANCE, "Your wallet does not cover this gift.")
    order = await orders.create_order(actor, orders.NewOrder(request.product_id, request.quantity, key))
    existing = await Gift.filter(order_id=order.id).first()
    if existing is not None:
        return existing
    if await Order.filter(id=order.id, status=OrderStatus.PENDING_PAYMENT).count() != 1:
        # The same request, concurrently, may have made and paid the gift since the check
        # above (one transaction makes the gift and pays the order): it is that gift.
        if (existing := await Gift.filter(order_id=order.id).first()) is not None:
            return existing
        raise UserFacingError(ErrorCode.DUPLICATE, "This idempotency key was used for an order that is not a gift.",
                              "idempotencyKey")
    try:
        return await _hold_and_pay(order, sender, request, message)
    except UserFacingError:
        if (won := await Gift.filter(order_id=order.id).first()) is not None:
            return won  # the same request, concurrently: the other one made the gift
        async with outbox.atomic():  # the payment failed: the reservation goes back at once
            if await orders.transition(order, OrderStatus.CANCELLED, note="the gift could not be paid"):
                await inventory.release(order)
        raise


async def _hold_and_pay(order: Order, sender: User, request: NewGift, message: str) -> Gift:
    now = datetime.now(UTC)
    async with outbox.atomic():
        # The order's row lock serialises two sends of one idempotency key: the second finds
        # the first one's gift once it commits.
        await Order.filter(id=order.id).select_for_update().first()
        if (existing := await Gift.filter(order_id=order.id).first()) is not None:
            return existing
        # Held before it is paid: the delivery job the payment queues finds it waiting.
        if not await Order.filter(id=order.id, status=OrderStatus.PENDING_PAYMENT).update(awaiting_claim=True):
            raise UserFacingError(ErrorCode.INVALID_STATE, "This order is no longer awaiting payment.")
        order.awaiting_claim = True
        gift = await Gift.create(
            order_id=order.id, product_id=order.product_id, quantity=order.quantity,
            sender_id=sender.id, recipient_id=request.recipient_id,
            code_digest=_digest(claim_code(order.id)), message=message,
            expires_at=now + timedelta(days=get_settings().gift_claim_days),
        )
        await payments.pay_from_wallet(order, sender.id, note="paid as a gift")
        if request.recipient_id is not None:
            await notifications.notify(
                request.recipient_id, "GIFT_RECEIVED", f"{sender.nickname} sent you a gift",
                message, {"giftId": gift.id}, dedupe_key=f"gift:{gift.id}:received",
            )
    return gift


async def _find(actor: Actor, gift_id: int | None, code: str | None) -> Gift:
    user = require(actor)
    if (gift_id is None) == (code is None):
        raise invalid("giftId", "Name the gift by its id (a gift to you) or by its claim code, not both.")
    if code is not None:
        limit = get_settings().gift_claim_limit
        limiter = runtime.limiter()
        if not (await limiter.hit(limit, "gift:user", str(user.id)) and await limiter.hit(limit, "gift:ip", actor.ip or "-")):
            raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many claim attempts; wait a minute and try again.")
        wanted = code.strip()
        if len(wanted) != CODE_LENGTH:
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such gift.", "code")
        gift = await Gift.filter(code_digest=_digest(wanted)).first()
        # A gift addressed to someone is theirs to claim, code or not; once a gift is claimed or
        # returned, a code holder learns just that (INVALID_STATE at the claim).
        addressed_elsewhere = gift is not None and gift.status == GiftStatus.PENDING and gift.recipient_id not in (
            None, user.id)
        if gift is None or addressed_elsewhere:
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such gift.", "code")
        return gift
    gift = await Gift.filter(id=gift_id, recipient_id=user.id).first()
    if gift is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such gift.", "giftId")
    return gift


async def preview(actor: Actor, code: str) -> Gift:
    """The gift a claim code names, before claiming it."""
    return await _find(actor, None, code)


async def claim(actor: Actor, *, gift_id: int | None = None, code: str | None = None) -> Gift:
    user = require(actor)
    gift = await _find(actor, gift_id, code)
    if gift.sender_id == user.id:
        raise invalid("giftId" if code is None else "code", "You cannot claim your own gift.")
    if gift.status != GiftStatus.PENDING:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"This gift is {gift.status.value.lower()} already.")
    now = datetime.now(UTC)
    async with outbox.atomic():
        if not await Gift.filter(id=gift.id, status=GiftStatus.PENDING, expires_at__gt=now).update(
            status=GiftStatus.CLAIMED, recipient_id=user.id, claimed_at=now
        ):
            raise UserFacingError(ErrorCode.INVALID_STATE, "This gift was claimed or returned already.")
        await Order.filter(id=gift.order_id, awaiting_claim=True).update(
            buyer_id=user.id, awaiting_claim=False, delivery_from=now, updated_at=now
        )
        await outbox.enqueue(jobs.deliver_order(gift.order_id))
        await notifications.notify(
            gift.sender_id, "GIFT_CLAIMED", f"{user.nickname} claimed your gift", data={"giftId": gift.id},
            dedupe_key=f"gift:{gift.id}:claimed",
        )
    return await Gift.get(id=gift.id)


async def return_unclaimed(limit: int = 200) -> int:
    """The sweep: gifts past their claim window go back to their sender, refunded once."""
    now = datetime.now(UTC)
    due = await Gift.filter(status=GiftStatus.PENDING, expires_at__lte=now).limit(limit)
    returned = 0
    for gift in due:
        async with outbox.atomic():
            if not await Gift.filter(id=gift.id, status=GiftStatus.PENDING).update(
                status=GiftStatus.RETURNED, returned_at=now
            ):
                continue  # claimed meanwhile, or another sweep took it
            await Order.filter(id=gift.order_id).update(awaiting_claim=False)
            order = await Order.get(id=gift.order_id)
            await settlement.refund_order(order, "gift not claimed in time: refunded to the sender")
            await notifications.notify(
                gift.sender_id, "GIFT_RETURNED", "Your gift was not claimed: it was refunded to your wallet",
                data={"giftId": gift.id}, dedupe_key=f"gift:{gift.id}:returned",
            )
        returned += 1
    return returned


async def mine(actor: Actor, *, sent: bool, first: int = 50) -> list[Gift]:
    user = require(actor)
    query = Gift.filter(sender_id=user.id) if sent else Gift.filter(recipient_id=user.id)
    return await query.order_by("-id").limit(max(1, min(first, 100)))


async def visible_gifts(actor: Actor, ids: list[int]) -> list[Gift | None]:
    """Gifts by id for their sender and recipient only."""
    user = actor.user
    found = {g.id: g for g in await Gift.filter(id__in=ids)} if user is not None else {}
    return [g if (g := found.get(i)) is not None and user is not None and user.id in (g.sender_id, g.recipient_id)
            else None for i in ids]
