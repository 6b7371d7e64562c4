"""Self-service resolution (issue 14, item 3): a buyer reports that a card key does not work
or that an order never arrived; the rules below resolve the common cases at once, anything
else waits for staff; the shop may contest an automatic outcome, and staff decide.

The rules are one table in code (``RULES``), not a table staff edit: each row names checks
and a remedy that are code paths moving stock and money, so a change to them is a change
of behaviour that goes through review and the tests. What staff should tune without a
release, the thresholds (report window, claim rate, contest window), are settings.

Before any rule, a report must be one the buyer can make: their own order (CONTEST and
DECIDE are others' rows in the permission table), a reason that fits the product's kind, a
key that was sold once, to this order, and revealed to its buyer. Otherwise a UserError,
and nothing is written. The money and the keys move in resolvers/trust/remedies.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from tortoise.exceptions import IntegrityError

from kameng.settings import Settings, get_settings
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.inventory import CardKey, CardKeyReveal, CardKeyStatus
from models.commerce.merchants import Merchant
from models.commerce.orders import Order, OrderStatus
from models.trust.claims import Claim, ClaimOutcome, ClaimReason, ClaimStatus
from resolvers.accounts import notifications, permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce.inputs import clean_text
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.trust import remedies
from subscriptions import outbox

MESSAGE_MAX = 500
#: Orders a claim can still make good: their money is in escrow or with the shop.
_CLAIMABLE = frozenset({OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.COMPLETED})
NOTE_MAX = 300


# -- the rules ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """What the checks look at: the order, its product, the reported key, the buyer's record."""

    order: Order
    product: Product
    key: CardKey | None
    now: datetime
    settings: Settings
    prior_claims: int  # the buyer's other claims within the claim-rate window
    recent_orders: int  # the buyer's orders delivered within it


#: A check returns None when the case passes, else why not (kept as the claim's ``rule``).
Check = Callable[[Case], str | None]


class Remedy(StrEnum):
    REPLACE_ELSE_REFUND = "REPLACE_ELSE_REFUND"  # a fresh key if the product has one, else the key's price
    REFUND = "REFUND"  # the whole order


def timely(case: Case) -> str | None:
    delivered = case.key.sold_at if case.key is not None and case.key.sold_at else case.order.delivered_at
    window = timedelta(hours=case.settings.claim_report_window_hours)
    return None if delivered is not None and case.now - delivered <= window else "late-report"


def normal_rate(case: Case) -> str | None:
    if case.prior_claims == 0:
        return None
    rate = Decimal(case.prior_claims + 1) / max(case.recent_orders, 1)
    return None if rate <= case.settings.claim_rate_max else "claim-rate"


def undelivered(case: Case) -> str | None:
    return None if case.order.status in (OrderStatus.PAID, OrderStatus.DELIVERING) else "marked-delivered"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    reason: ClaimReason
    kinds: frozenset[DeliveryKind]
    checks: tuple[Check, ...]
    remedy: Remedy


RULES: tuple[Rule, ...] = (
    Rule("key-invalid", ClaimReason.KEY_INVALID, frozenset({DeliveryKind.CARD_KEY}),
         (timely, normal_rate), Remedy.REPLACE_ELSE_REFUND),
    # Past the promise is a precondition of the report itself (see ``_check_not_received``):
    # an early report would otherwise hold the order's one NOT_RECEIVED claim in review.
    Rule("not-received", ClaimReason.NOT_RECEIVED, frozenset({DeliveryKind.DIRECT_TOPUP, DeliveryKind.MANUAL}),
         (undelivered,), Remedy.REFUND),
)


def rule_for(reason: ClaimReason, kind: DeliveryKind) -> Rule | None:
    return next((r for r in RULES if r.reason == reason and kind in r.kinds), None)


# -- filing -------------------------------------------------------------------------------


async def self_serve(
    actor: Actor,
    order_id: int,
    reason: ClaimReason,
    *,
    ticket_id: int | None = None,
    card_key_id: int | None = None,
    message: str = "",
) -> Claim:
    """File the buyer's report and resolve it by the rules, in one transaction: a replacement
    key or a refund at once, or PENDING_REVIEW for staff. Reporting the same key (or the same
    NOT_RECEIVED) again returns the existing claim, concurrent reports included."""
    user = permissions.require_signed_in(actor)
    message = clean_text(message or "", "message", minimum=0, maximum=MESSAGE_MAX, multiline=True)
    order = await Order.filter(id=order_id).first()
    if order is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    permissions.require(actor, Action.REPORT_ORDER_PROBLEM, owner_id=order.buyer_id)
    product = await Product.get(id=order.product_id)
    rule = rule_for(reason, product.delivery_kind)
    if rule is None:
        raise invalid("reason", f"{reason.value} does not apply to a {product.delivery_kind.value} order.")
    key = await _reported_key(order, card_key_id) if reason == ClaimReason.KEY_INVALID else None
    subject = f"key:{key.id}" if key is not None else reason.value
    existing = await Claim.filter(order_id=order.id, subject=subject).first()
    if existing is not None:
        return existing
    if key is not None:
        await _check_key(order, key, user.id)
    else:
        await _check_not_received(order, product)
    try:
        async with outbox.atomic():
            order = await Order.filter(id=order.id).select_for_update().get()  # one claim or settlement at a time
            if order.status not in _CLAIMABLE:  # refunded or failed since it was read
                raise UserFacingError(ErrorCode.INVALID_STATE, f"An order that is {order.status.value} "
                                      "cannot be reported.", "orderId")
            claim = await Claim.create(
                order_id=order.id, subject=subject, buyer_id=user.id, merchant_id=order.merchant_id, reason=reason,
                ticket_id=ticket_id, card_key_id=key.id if key is not None else None, message=message,
                status=ClaimStatus.PENDING_REVIEW, amount=_amount(order, reason),
            )
            await _apply_rule(claim, rule, await _case(claim, order, product, key))
            return claim
    except IntegrityError:  # the same report, filed concurrently: its claim
        return await Claim.get(order_id=order.id, subject=subject)


async def _reported_key(order: Order, card_key_id: int | None) -> CardKey:
    keys = CardKey.filter(order_id=order.id, status__in=[CardKeyStatus.SOLD, CardKeyStatus.INVALID])
    if card_key_id is not None:
        key = await keys.filter(id=card_key_id).first()
        if key is None:
            raise UserFacingError(ErrorCode.NOT_FOUND, "This order has no such key.", "cardKeyId")
        return key
    sold = await keys.filter(status=CardKeyStatus.SOLD).limit(2)
    if len(sold) != 1:
        raise invalid("cardKeyId", "Say which of the order's keys does not work.")
    return sold[0]


async def _check_key(order: Order, key: CardKey, buyer_id: int) -> None:
    """Sold once, to this order, which is delivered, and shown to its buyer."""
    if key.status != CardKeyStatus.SOLD or order.status not in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
        raise UserFacingError(ErrorCode.INVALID_STATE, "This key cannot be reported.", "cardKeyId")
    if not await CardKeyReveal.filter(card_key_id=key.id, order_id=order.id, user_id=buyer_id).exists():
        raise UserFacingError(ErrorCode.INVALID_STATE, "Open the key before reporting that it does not work.",
                              "cardKeyId")


async def _check_not_received(order: Order, product: Product) -> None:
    if order.status in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
        return  # the shop says delivered, the buyer says not: staff look
    if order.status not in (OrderStatus.PAID, OrderStatus.DELIVERING) or order.paid_at is None:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"An order that is {order.status.value} cannot be reported.")
    due = order.delivery_due_at or order.paid_at + timedelta(minutes=product.delivery_promise_minutes)
    if datetime.now(UTC) <= due:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"The order is due by {due:%Y-%m-%d %H:%M} UTC; "
                              "report it if it has not arrived by then.")


def _amount(order: Order, reason: ClaimReason) -> Decimal:
    return remedies.key_share(order) if reason == ClaimReason.KEY_INVALID else Decimal(order.total)


async def _case(claim: Claim, order: Order, product: Product, key: CardKey | None) -> Case:
    settings = get_settings()
    now = datetime.now(UTC)
    since = now - timedelta(days=settings.claim_rate_window_days)
    prior = await Claim.filter(buyer_id=claim.buyer_id, created_at__gte=since).exclude(id=claim.id).count()
    recent = await Order.filter(buyer_id=claim.buyer_id, delivered_at__gte=since).count()
    return Case(order, product, key, now, settings, prior, recent)


async def _apply_rule(claim: Claim, rule: Rule, case: Case) -> None:
    failed = next((why for why in (check(case) for check in rule.checks) if why is not None), None)
    if failed is not None:
        await _pending(claim, failed)
        return
    try:
        await _remedy(claim, case.order, case.key, rule.remedy, note=f"rule {rule.name}")
    except remedies.CannotPay:
        await _pending(claim, "shop-cannot-pay")
        return
    claim.automatic, claim.rule = True, rule.name
    await claim.save(update_fields=["automatic", "rule"])
    merchant = await Merchant.get(id=claim.merchant_id)
    await notifications.notify(
        merchant.owner_id, "CLAIM_RESOLVED", f"A claim on order {case.order.order_no} was resolved automatically",
        f"{claim.outcome.value}; you may contest it within {case.settings.claim_contest_hours:g} hours.",
        {"claimId": claim.id, "orderId": case.order.id}, dedupe_key=f"claim:{claim.id}:merchant",
    )


async def _pending(claim: Claim, why: str) -> None:
    claim.rule = why
    await claim.save(update_fields=["rule"])


async def _remedy(claim: Claim, order: Order, key: CardKey | None, remedy: Remedy, *, note: str) -> None:
    """Replace the key or refund; the claim RESOLVED and its buyer told. CannotPay: nothing done."""
    if remedy == Remedy.REPLACE_ELSE_REFUND and key is not None:
        replacement = await remedies.replace_key(order, key)
        if replacement is not None:
            claim.outcome, claim.replacement_key_id = ClaimOutcome.REPLACEMENT, replacement
    if claim.outcome != ClaimOutcome.REPLACEMENT:
        claim.paid_from = await remedies.refund(claim, order, Decimal(claim.amount), f"{note}: {claim.reason.value}")
        claim.outcome = ClaimOutcome.REFUND
        if key is not None:
            await remedies.mark_invalid(key)
    claim.status, claim.resolved_at = ClaimStatus.RESOLVED, datetime.now(UTC)
    await claim.save(update_fields=["outcome", "replacement_key_id", "paid_from", "status", "resolved_at"])
    title = "A replacement key was delivered" if claim.outcome == ClaimOutcome.REPLACEMENT else \
        f"{claim.amount} was refunded to your wallet"
    await notifications.notify(claim.buyer_id, "CLAIM_RESOLVED", f"{title} (order {order.order_no})", "",
                               {"claimId": claim.id, "orderId": order.id}, dedupe_key=f"claim:{claim.id}:buyer")


# -- contest and decision -----------------------------------------------------------------


class Decision(StrEnum):
    UPHOLD = "UPHOLD"  # a contested outcome stands
    REVERSE = "REVERSE"  # a contested outcome is undone: the shop is paid back
    REFUND = "REFUND"  # a claim in review: refund the buyer
    REPLACE = "REPLACE"  # a KEY_INVALID claim in review: a fresh key (else a refund)
    REJECT = "REJECT"  # a claim in review: nothing is owed


async def contest(actor: Actor, claim_id: int, reason: str) -> Claim:
    """The shop's owner contests an automatic outcome, once, within the contest window."""
    claim = await _find(claim_id)
    merchant = await Merchant.get(id=claim.merchant_id)
    permissions.require(actor, Action.CONTEST_CLAIM, owner_id=merchant.owner_id)
    reason = clean_text(reason or "", "reason", minimum=3, maximum=MESSAGE_MAX, multiline=True)
    if claim.status != ClaimStatus.RESOLVED or not claim.automatic or claim.contested_at is not None:
        raise UserFacingError(ErrorCode.INVALID_STATE, "Only an automatic outcome is contested, once.", "claimId")
    assert claim.resolved_at is not None
    now = datetime.now(UTC)
    if now - claim.resolved_at > timedelta(hours=get_settings().claim_contest_hours):
        raise UserFacingError(ErrorCode.INVALID_STATE, "The time to contest this outcome is over.", "claimId")
    async with outbox.atomic():
        if not await Claim.filter(id=claim.id, status=ClaimStatus.RESOLVED, contested_at=None).update(
            status=ClaimStatus.CONTESTED, contested_at=now, contest_reason=reason, updated_at=now
        ):
            raise UserFacingError(ErrorCode.INVALID_STATE, "This claim was contested already.", "claimId")
    return await Claim.get(id=claim.id)


async def decide(actor: Actor, claim_id: int, decision: Decision, note: str) -> Claim:
    """Staff decide a contested claim (UPHOLD, REVERSE) or one in review (REFUND, REPLACE,
    REJECT). Each decision is a conditional change of the claim's status, so it happens once;
    REVERSE and REFUND are ledger postings keyed by the claim."""
    staff = permissions.require(actor, Action.DECIDE_CLAIM)
    note = clean_text(note or "", "note", minimum=3, maximum=NOTE_MAX)
    claim = await _find(claim_id)
    allowed = {ClaimStatus.CONTESTED: (Decision.UPHOLD, Decision.REVERSE),
               ClaimStatus.PENDING_REVIEW: (Decision.REFUND, Decision.REPLACE, Decision.REJECT)}
    if decision not in allowed.get(claim.status, ()):
        raise UserFacingError(ErrorCode.INVALID_STATE,
                              f"A {claim.status.value} claim cannot be decided {decision.value}.", "decision")
    if decision == Decision.REPLACE and claim.reason != ClaimReason.KEY_INVALID:
        raise invalid("decision", "Only a KEY_INVALID claim is resolved by a replacement.")
    async with outbox.atomic():
        claim = await Claim.filter(id=claim.id).select_for_update().get()
        order = await Order.filter(id=claim.order_id).select_for_update().get()
        if decision not in allowed.get(claim.status, ()):  # decided concurrently
            raise UserFacingError(ErrorCode.INVALID_STATE, "This claim was decided already.", "claimId")
        if decision in (Decision.REFUND, Decision.REPLACE) and order.status in (OrderStatus.REFUNDED,
                                                                              OrderStatus.CANCELLED):
            raise UserFacingError(ErrorCode.INVALID_STATE, "The order was refunded already.", "decision")
        claim.decided_by_id, claim.decision_note = staff.id, note
        if decision == Decision.UPHOLD:
            claim.status = ClaimStatus.RESOLVED
        elif decision == Decision.REVERSE:
            await remedies.reverse(claim, note)
            claim.status = ClaimStatus.REVERSED
        elif decision == Decision.REJECT:
            claim.status = ClaimStatus.REJECTED
        else:
            key = await CardKey.filter(id=claim.card_key_id).first() if claim.card_key_id is not None else None
            remedy = Remedy.REPLACE_ELSE_REFUND if decision == Decision.REPLACE else Remedy.REFUND
            try:
                await _remedy(claim, order, key, remedy, note=f"decided by user:{staff.id}")
            except remedies.CannotPay:
                raise UserFacingError(ErrorCode.INSUFFICIENT_BALANCE,
                                      "The shop's balance and deposit do not cover this refund.", "decision") from None
        await claim.save(update_fields=["status", "decided_by_id", "decision_note", "updated_at"])
        await notifications.notify(claim.buyer_id, "CLAIM_DECIDED", f"Your claim on order {order.order_no}: "
                                   f"{claim.status.value}", note, {"claimId": claim.id},
                                   dedupe_key=f"claim:{claim.id}:decided:{claim.status.value}")
    return claim


async def _find(claim_id: int) -> Claim:
    claim = await Claim.filter(id=claim_id).first()
    if claim is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such claim.", "claimId")
    return claim


# -- reads --------------------------------------------------------------------------------


def may_read(actor: Actor, claim: Claim, merchant_owner_id: int | None) -> bool:
    """A claim is its buyer's, its shop's and staff's."""
    return permissions.allowed(actor, Action.READ_PRIVATE, owner_id=claim.buyer_id) or (
        merchant_owner_id is not None and actor.user_id == merchant_owner_id
    )


async def readable_claim(actor: Actor, claim_id: int) -> Claim | None:
    """One claim for whoever may read it (its buyer, its shop's owner, staff), else None."""
    claim = await Claim.filter(id=claim_id).first()
    if claim is None:
        return None
    owner = await Merchant.filter(id=claim.merchant_id).values_list("owner_id", flat=True)
    return claim if may_read(actor, claim, int(owner[0]) if owner else None) else None


async def claims_of_order(actor: Actor, order_id: int) -> list[Claim]:
    """An order's claims, oldest first, for whoever may read them (else empty)."""
    order = await Order.filter(id=order_id).select_related("merchant").first()
    if order is None:
        return []
    rows = await Claim.filter(order_id=order_id).order_by("id")
    return [c for c in rows if may_read(actor, c, order.merchant.owner_id)]


async def claims_to_decide(actor: Actor, limit: int = 50) -> list[Claim]:
    """Staff's queue: claims in review and contested ones, oldest first."""
    permissions.require(actor, Action.DECIDE_CLAIM)
    return list(await Claim.filter(status__in=[ClaimStatus.PENDING_REVIEW, ClaimStatus.CONTESTED])
                .order_by("id").limit(max(1, min(limit, 100))))
