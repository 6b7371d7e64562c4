"""Reminders and renewal offers, and the one-click renewal of an item.

The sweep sends, each exactly once (``RenewalReminder`` unique per (kind, reference),
written in the notification's transaction, and the notification's own dedupe key):

* ``PLAN_RENEWAL``: ``KAMENG_RENEWAL_REMINDER_DAYS`` before a plan renews, what it will
  charge;
* ``PLAN_ENDING`` and ``ITEM_EXPIRY``: ``KAMENG_EXPIRY_REMINDER_DAYS`` before a plan
  without auto-renew ends, or a delivered item's validity runs out, a renewal offer (the
  price the pricing engine gives this buyer today, member tier included) and a short
  personal summary (how many they bought of this product and of its category, customer
  since). The notification's data names the mutation that renews in one click
  (``renewItem`` / ``renewPlanNow``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tortoise.exceptions import IntegrityError

from kameng.settings import get_settings
from models.accounts.users import User
from models.commerce.catalog import Product, ProductStatus
from models.commerce.orders import Order, OrderStatus
from models.commerce.payments import PaymentMethod
from models.repurchase.plans import PlanStatus, ProductPlan, RenewalState
from models.repurchase.reminders import ReminderKind, RenewalReminder
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.commerce import orders, payments, pricing
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.repurchase.validity import HELD
from subscriptions import outbox

BATCH = 500
#: How many times one item may be renewed afresh after its renewal order was cancelled unpaid.
RENEW_ITEM_KEYS = 20


@dataclass(frozen=True)
class Offer:
    total: Decimal | None  # null: the product is not on sale now
    currency: str
    bought_of_product: int
    bought_of_category: int
    customer_since: datetime

    def text(self, title: str) -> str:
        price = f"Renew now for {self.total} {self.currency}." if self.total is not None else "It is not on sale now."
        line = f"You have bought {title} {self.bought_of_product} time(s)"
        if self.bought_of_category > self.bought_of_product:
            line += f" and {self.bought_of_category} item(s) of its kind"
        return f"{price} {line}; a customer since {self.customer_since:%Y-%m-%d}. Thank you!"


async def offer_for(user: User, product: Product, quantity: int) -> Offer:
    """The renewal offer and personal summary for ``user``: today's price from the pricing
    engine, and what they bought of this product line."""
    total: Decimal | None = None
    if product.status == ProductStatus.ACTIVE:
        try:
            priced = await pricing.price(Actor(user=user), pricing.PriceRequest(product.id, quantity), product=product)
            total = priced.quote.total
        except UserFacingError:
            total = None
    paid = Order.filter(buyer_id=user.id, paid_at__isnull=False)
    of_product = await paid.filter(product_id=product.id).count()
    of_category = of_product
    if product.category_id is not None:
        of_category = await paid.filter(product__category_id=product.category_id).count()
    return Offer(total, product.currency, of_product, of_category, user.created_at)


async def _send(kind: ReminderKind, reference: str, user: User, product: Product, offer: Offer | None,
                title: str, body: str, data: dict[str, object]) -> bool:
    async with outbox.atomic():
        try:
            async with outbox.atomic():
                await RenewalReminder.create(kind=kind, reference=reference, user_id=user.id, product_id=product.id,
                                             offer_total=offer.total if offer else None)
        except IntegrityError:
            return False
        if offer is not None and offer.total is not None:
            data["offerTotal"] = str(offer.total)
        await notifications.notify(user.id, f"RENEWAL_{kind.value}", title, body, data,
                                   dedupe_key=f"reminder:{kind.value}:{reference}")
    return True


async def _sent(kind: ReminderKind, references: list[str]) -> set[str]:
    if not references:
        return set()
    return set(await RenewalReminder.filter(kind=kind, reference__in=references).values_list("reference", flat=True))


async def sweep(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    settings = get_settings()
    sent = 0
    renew_by = now + timedelta(days=settings.renewal_reminder_days)
    end_by = now + timedelta(days=settings.expiry_reminder_days)
    # Plans renewing soon: the charge to expect.
    due = await ProductPlan.filter(status=PlanStatus.ACTIVE, auto_renew=True, renewal_state=RenewalState.IDLE,
                                   next_renewal_at__gt=now, next_renewal_at__lte=renew_by).limit(BATCH)
    sent += await _plan_reminders(due, ReminderKind.PLAN_RENEWAL)
    ending = await ProductPlan.filter(status=PlanStatus.ACTIVE, auto_renew=False, renewal_state=RenewalState.IDLE,
                                      next_renewal_at__gt=now, next_renewal_at__lte=end_by).limit(BATCH)
    sent += await _plan_reminders(ending, ReminderKind.PLAN_ENDING)
    # Delivered items running out.
    items = await Order.filter(status__in=HELD, buyer_id__isnull=False, valid_until__gt=now,
                               valid_until__lte=end_by).limit(BATCH)
    done = await _sent(ReminderKind.ITEM_EXPIRY, [f"order:{o.id}" for o in items])
    for order in items:
        if f"order:{order.id}" in done:
            continue
        user = await User.get(id=order.buyer_id)
        product = await Product.get(id=order.product_id)
        offer = await offer_for(user, product, order.quantity)
        sent += await _send(
            ReminderKind.ITEM_EXPIRY, f"order:{order.id}", user, product, offer,
            f"{product.title} runs out on {order.valid_until:%Y-%m-%d}", offer.text(product.title),
            {"orderId": order.id, "productId": product.id, "validUntil": order.valid_until.isoformat(),
             "renewWith": "renewItem"},
        )
    return sent


async def _plan_reminders(plans: list[ProductPlan], kind: ReminderKind) -> int:
    sent = 0
    references = {plan.id: f"plan:{plan.id}:{plan.period + 1}" for plan in plans}
    done = await _sent(kind, list(references.values()))
    for plan in plans:
        if references[plan.id] in done:
            continue
        user = await User.get(id=plan.buyer_id)
        product = await Product.get(id=plan.pending_product_id or plan.product_id)
        offer = await offer_for(user, product, plan.pending_quantity or plan.quantity)
        data: dict[str, object] = {"planId": plan.id, "productId": product.id,
                                   "at": plan.next_renewal_at.isoformat(), "renewWith": "renewPlanNow"}
        if kind == ReminderKind.PLAN_RENEWAL:
            price = f"{offer.total} {offer.currency}" if offer.total is not None else "the price then"
            title = f"Your plan of {product.title} renews on {plan.next_renewal_at:%Y-%m-%d}"
            body = f"{price} will be paid from your wallet. Pause, skip or change it before then if you like."
        else:
            title = f"Your plan of {product.title} ends on {plan.next_renewal_at:%Y-%m-%d}"
            body = offer.text(product.title)
        sent += await _send(kind, references[plan.id], user, product, offer, title, body, data)
    return sent


async def renew_item(actor: Actor, order_id: int) -> Order:
    """One click: order the same product and quantity again and pay it from the wallet. Its
    validity runs on from this item's (validity.py). A second click returns the same order
    (the idempotency key names the item); after a failed payment the order waits for one."""
    user = require(actor)
    previous = await Order.filter(id=order_id, buyer_id=user.id).first()
    if previous is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    if previous.status not in HELD:
        raise UserFacingError(ErrorCode.INVALID_STATE, "Only a delivered item can be renewed.", "orderId")
    base = f"renew-{previous.id:08d}"  # idempotency keys have at least 8 characters
    key = base
    for n in range(RENEW_ITEM_KEYS):
        key = base if n == 0 else f"{base}-{n}"
        found = await Order.filter(idempotency_scope=f"u:{user.id}", idempotency_key=key).first()
        if found is None or found.status != OrderStatus.CANCELLED:
            break
    else:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This item cannot be renewed again; order it anew.", "orderId")
    order = await orders.create_order(actor, orders.NewOrder(
        product_id=previous.product_id, quantity=previous.quantity, idempotency_key=key,
        topup_account=previous.topup_account or None,
    ))
    if order.status == OrderStatus.PENDING_PAYMENT:
        paid = await payments.pay_order(actor, order.id, PaymentMethod.WALLET)
        order = paid.order
    return order
