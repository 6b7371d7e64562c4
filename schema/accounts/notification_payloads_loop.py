"""Typed payloads of the notification kinds issues 11 to 14 added: gifts, friend-pay,
invitations, after-sales tickets and claims, plans and their renewals, renewal reminders and
birthdays. Each object is read as the reader may see it (null when they may not): nodes
through their own ``resolve_nodes``, plans only by their buyer, claims by their buyer, their
shop's owner and staff. Part of the ``NotificationPayload`` union
(schema/accounts/notification_payloads.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from resolvers.errors import UserFacingError
from resolvers.repurchase import plans
from resolvers.trust import claims
from schema.accounts.notification_nodes import key, node, optional_key
from schema.base import Money, graph_type
from schema.context import Info

if TYPE_CHECKING:
    from schema.commerce.catalog import Product
    from schema.commerce.gifts import Gift
    from schema.commerce.orders import Order
    from schema.repurchase.plans import ProductPlan
    from schema.trust.claims import Claim
    from schema.trust.tickets import Ticket

CURRENCY = "CNY"
GIFT_KINDS = frozenset({"GIFT_RECEIVED", "GIFT_CLAIMED", "GIFT_RETURNED"})
TICKET_KINDS = frozenset({"TICKET_MESSAGE", "TICKET_STATUS"})
PLAN_KINDS = frozenset({"PLAN_RENEWED", "PLAN_RENEWAL_FAILED", "PLAN_LAPSED", "PLAN_ENDED"})
REMINDER_KINDS = frozenset({"RENEWAL_ITEM_EXPIRY", "RENEWAL_PLAN_ENDING", "RENEWAL_PLAN_RENEWAL"})
CLAIM_KINDS = frozenset({"CLAIM_RESOLVED", "CLAIM_DECIDED"})


async def _plan(info: Info, plan_id: int | None) -> Any:
    if plan_id is None:
        return None
    try:
        return graph_type("ProductPlan").from_model(await plans.own_plan(info.context.actor, plan_id))
    except UserFacingError:  # not signed in, or not the reader's plan
        return None


@strawberry.type(description="A gift: one was sent to the reader (GIFT_RECEIVED), the reader's gift was claimed "
                             "(GIFT_CLAIMED), or it was not claimed in time and refunded to them (GIFT_RETURNED).")
class GiftNotification:
    _gift_id: strawberry.Private[int]

    @strawberry.field(description="The gift; null if the reader may no longer see it.")
    async def gift(self, info: Info) -> Annotated[Gift, strawberry.lazy("schema.commerce.gifts")] | None:
        return await node(info, "Gift", self._gift_id)


@strawberry.type(description="A friend paid the reader's order through its friend-pay link (FRIEND_PAID).")
class FriendPaidNotification:
    _order_id: strawberry.Private[int]

    @strawberry.field(description="The order, now paid; null if the reader may no longer see it.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.commerce.orders")] | None:
        return await node(info, "Order", self._order_id)


@strawberry.type(description="An invitation paid off (INVITATION_REWARDED): someone the reader invited completed "
                             "their first order, or the reader did as an invitee; both earn points.")
class InvitationRewardedNotification:
    points: int | None = strawberry.field(description="The points the reader earned; null on older notifications.")
    as_inviter: bool | None = strawberry.field(
        description="True: the reader invited; false: the reader was invited; null on older notifications.")


@strawberry.type(description="An after-sales ticket the reader takes part in has a new message (TICKET_MESSAGE) "
                             "or a new status (TICKET_STATUS).")
class TicketNotification:
    status: str | None = strawberry.field(description="The ticket's status when notified (a `TicketStatus` name).")
    _ticket_id: strawberry.Private[int]
    _order_id: strawberry.Private[int | None]

    @strawberry.field(description="The ticket; null if the reader may no longer see it.")
    async def ticket(self, info: Info) -> Annotated[Ticket, strawberry.lazy("schema.trust.tickets")] | None:
        return await node(info, "Ticket", self._ticket_id)

    @strawberry.field(description="The order complained about; null if the reader may not see it.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.commerce.orders")] | None:
        return await node(info, "Order", self._order_id)


@strawberry.type(description="The reader's product plan was renewed (PLAN_RENEWED), could not be renewed and will "
                             "be retried (PLAN_RENEWAL_FAILED), lapsed after its retries (PLAN_LAPSED) or ended "
                             "without auto-renew (PLAN_ENDED).")
class PlanNotification:
    period: int | None = strawberry.field(description="The period concerned; null for PLAN_ENDED.")
    retry_at: datetime | None = strawberry.field(description="PLAN_RENEWAL_FAILED: when it is tried again.")
    _plan_id: strawberry.Private[int]
    _order_id: strawberry.Private[int | None]

    @strawberry.field(description="The plan; null if it is not the reader's.")
    async def plan(self, info: Info) -> Annotated[ProductPlan, strawberry.lazy("schema.repurchase.plans")] | None:
        return await _plan(info, self._plan_id)

    @strawberry.field(description="PLAN_RENEWED: the period's order; null otherwise or if not visible.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.commerce.orders")] | None:
        return await node(info, "Order", self._order_id)


@strawberry.type(description="A renewal reminder: a delivered item runs out (RENEWAL_ITEM_EXPIRY, renew with "
                             "`renewItem`), a plan without auto-renew ends (RENEWAL_PLAN_ENDING) or a plan renews "
                             "and charges soon (RENEWAL_PLAN_RENEWAL); both renew with `renewPlanNow`.")
class RenewalReminderNotification:
    at: datetime | None = strawberry.field(description="When the item runs out or the plan renews or ends.")
    renew_with: str | None = strawberry.field(description="The mutation that renews in one call.")
    offer_total: Money | None = strawberry.field(description="The renewal's price with the offer; null if none.")
    _product_id: strawberry.Private[int]
    _order_id: strawberry.Private[int | None]
    _plan_id: strawberry.Private[int | None]

    @strawberry.field(description="The product to renew; null if no longer visible.")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await node(info, "Product", self._product_id)

    @strawberry.field(description="RENEWAL_ITEM_EXPIRY: the order of the item running out; null otherwise.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.commerce.orders")] | None:
        return await node(info, "Order", self._order_id)

    @strawberry.field(description="The plan reminders: the plan; null otherwise or if it is not the reader's.")
    async def plan(self, info: Info) -> Annotated[ProductPlan, strawberry.lazy("schema.repurchase.plans")] | None:
        return await _plan(info, self._plan_id)


@strawberry.type(description="A claim was resolved (CLAIM_RESOLVED: to its buyer, and to the shop when a rule "
                             "decided it) or staff decided it (CLAIM_DECIDED).")
class ClaimNotification:
    _claim_id: strawberry.Private[int]
    _order_id: strawberry.Private[int | None]

    @strawberry.field(description="The claim, as it stands now; null if the reader may not see it.")
    async def claim(self, info: Info) -> Annotated[Claim, strawberry.lazy("schema.trust.claims")] | None:
        found = await claims.readable_claim(info.context.actor, self._claim_id)
        return graph_type("Claim").from_model(found) if found is not None else None

    @strawberry.field(description="The order claimed about; null if not named or not visible.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.commerce.orders")] | None:
        return await node(info, "Order", self._order_id)


@strawberry.type(description="Happy birthday (BIRTHDAY): the yearly benefit.")
class BirthdayNotification:
    year: int = strawberry.field(description="The year of the birthday.")
    points: int | None = strawberry.field(description="The points granted (0: wishes only); nullable like "
                                                      "`InvitationRewardedNotification.points`, never null here.")


def _when(data: dict[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _count(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(name)
    return value


def typed(kind: str, data: dict[str, Any]) -> Any:
    """The payload of one of these kinds; KeyError for a kind not here, KeyError/ValueError/
    TypeError on data it cannot read (the caller answers ``UnknownNotification``)."""
    if kind in GIFT_KINDS:
        return GiftNotification(_gift_id=key(data, "giftId"))
    if kind == "FRIEND_PAID":
        return FriendPaidNotification(_order_id=key(data, "orderId"))
    if kind == "INVITATION_REWARDED":
        inviter = data.get("asInviter")
        return InvitationRewardedNotification(points=_count(data, "points"),
                                              as_inviter=inviter if isinstance(inviter, bool) else None)
    if kind in TICKET_KINDS:
        status = data.get("status")
        return TicketNotification(status=status if isinstance(status, str) else None,
                                  _ticket_id=key(data, "ticketId"), _order_id=optional_key(data, "orderId"))
    if kind in PLAN_KINDS:
        return PlanNotification(period=_count(data, "period"), retry_at=_when(data, "retryAt"),
                                _plan_id=key(data, "planId"), _order_id=optional_key(data, "orderId"))
    if kind in REMINDER_KINDS:
        total = data.get("offerTotal")
        renew = data.get("renewWith")
        return RenewalReminderNotification(
            at=_when(data, "validUntil") or _when(data, "at"), renew_with=renew if isinstance(renew, str) else None,
            offer_total=Money(amount=Decimal(str(total)), currency=CURRENCY) if total is not None else None,
            _product_id=key(data, "productId"), _order_id=optional_key(data, "orderId"),
            _plan_id=optional_key(data, "planId"),
        )
    if kind in CLAIM_KINDS:
        return ClaimNotification(_claim_id=key(data, "claimId"), _order_id=optional_key(data, "orderId"))
    if kind == "BIRTHDAY":
        return BirthdayNotification(year=key(data, "year"), points=_count(data, "points") or 0)
    raise KeyError(kind)
