"""After-sales tickets: a buyer complains about one order, the shop and staff answer.

Statuses and who moves them (every move is a conditional update on the status read, so of
two concurrent moves one wins; each is a ``TicketEntry`` in the ticket's history):

====================  =======================================================  =====================
from                  event                                                    to
====================  =======================================================  =====================
(new)                 the buyer opens it, with a message                       OPEN
OPEN, WAITING_ON_*    the shop's owner or staff write                          WAITING_ON_BUYER
WAITING_ON_BUYER      the buyer writes                                         WAITING_ON_MERCHANT
OPEN, WAITING_ON_*    a deadline passed (the sweep ``escalate_overdue``)       ESCALATED
ESCALATED             anyone writes                                            ESCALATED (staff own it)
any active            the buyer or staff resolve it                            RESOLVED
any active            the buyer withdraws it, or staff close it                CLOSED
====================  =======================================================  =====================

SLA clocks start at opening: first response (a message from the shop or staff) and
resolution, from the settings, shorter for priority buyers (a tier whose benefits include
priority after-sales, GOLD today, or the PRIORITY_SUPPORT perk). ``due_at`` is the next
deadline that counts; the staff queue is ordered by it, so overdue tickets come first.

An active ticket on a DELIVERED order holds its auto-completion
(resolvers/commerce/settlement.complete_delivered_orders): opening one locks the order's
row, as the sweep does before it looks for tickets, so one of the two goes first and the
other sees what it did.

Every message and status change is an event on ``topics.ticket(id)`` (the ``ticketUpdated``
subscription) and a notification to the buyer and the shop's owner, except its author.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from kameng import clock, runtime
from kameng.settings import get_settings
from models.accounts.users import User
from models.commerce.merchants import Merchant
from models.commerce.orders import Order, OrderStatus
from models.trust.claims import ClaimOutcome, ClaimReason, ClaimStatus
from models.trust.tickets import ACTIVE, AuthorRole, EntryKind, Ticket, TicketEntry, TicketReason, TicketStatus
from resolvers.accounts import notifications, permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.loyalty import points, tiers
from resolvers.pagination import Page, paginate, paginate_by
from resolvers.trust import claims
from subscriptions import outbox, topics

BODY_MAX = 4000
PRIORITY_PERK = "PRIORITY_SUPPORT"
#: Orders a buyer may complain about: paid, whatever happened since (refunded ones are settled).
TICKETABLE = frozenset({OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.COMPLETED,
                        OrderStatus.FAILED})
FINISHED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})

topic_for = topics.ticket


# -- SLA clocks ---------------------------------------------------------------------------


async def is_priority(user: User) -> bool:
    """Priority after-sales: the buyer's tier gives it, or they hold the PRIORITY_SUPPORT perk."""
    return tiers.BENEFITS[user.tier].priority_after_sales or await points.has_perk(user.id, PRIORITY_PERK)


def clocks(priority: bool) -> tuple[timedelta, timedelta]:
    """(first response, resolution) allowed from opening."""
    s = get_settings()
    if priority:
        return (timedelta(minutes=s.ticket_priority_first_response_minutes),
                timedelta(minutes=s.ticket_priority_resolution_minutes))
    return timedelta(minutes=s.ticket_first_response_minutes), timedelta(minutes=s.ticket_resolution_minutes)


def next_due(ticket: Ticket, status: TicketStatus, first_response_at: datetime | None) -> datetime | None:
    if status in FINISHED:
        return None
    return ticket.first_response_due_at if first_response_at is None else ticket.resolution_due_at


def is_overdue(ticket: Ticket, now: datetime | None = None) -> bool:
    return ticket.due_at is not None and ticket.due_at <= (now or clock.now())


# -- who takes part -------------------------------------------------------------------------


async def _shop_owners(merchant_ids: list[int]) -> dict[int, int]:
    rows = await Merchant.filter(id__in=list(set(merchant_ids))).values_list("id", "owner_id")
    return {int(m): int(o) for m, o in rows}


def role_of(user: User | None, ticket: Ticket, owner_id: int | None) -> AuthorRole | None:
    """How ``user`` takes part in ``ticket``: its buyer, the shop's owner, staff; None: not at all."""
    if user is None or not user.is_active:
        return None
    if user.id == ticket.buyer_id:
        return AuthorRole.BUYER
    if owner_id is not None and user.id == owner_id:
        return AuthorRole.MERCHANT
    if permissions.permits(user, Action.REPLY_TICKET, owner_id=owner_id):
        return AuthorRole.STAFF
    return None


async def visible_tickets(actor: Actor, ids: list[int]) -> list[Ticket | None]:
    """Batch load of ``Ticket`` nodes in the order asked: for its buyer, the shop's owner and staff."""
    if actor.user is None:
        return [None] * len(ids)
    found = {t.id: t for t in await Ticket.filter(id__in=ids)}
    owners = await _shop_owners([t.merchant_id for t in found.values()])
    return [t if t is not None and role_of(actor.user, t, owners.get(t.merchant_id)) else None
            for t in (found.get(i) for i in ids)]


async def _participant(actor: Actor, ticket_id: int) -> tuple[Ticket, AuthorRole, User]:
    user = permissions.require_signed_in(actor)
    (ticket,) = await visible_tickets(actor, [ticket_id])
    if ticket is None:  # a stranger learns nothing of it
        raise UserFacingError(ErrorCode.FORBIDDEN, "You do not take part in this ticket.", "ticketId")
    role = role_of(user, ticket, (await _shop_owners([ticket.merchant_id])).get(ticket.merchant_id))
    assert role is not None
    return ticket, role, user


async def may_follow(user_id: int | None, ticket_id: int) -> bool:
    """Checked on subscribe and again on every event: the user as they are now (deactivated,
    role changed) still takes part in the ticket."""
    if user_id is None:
        return False
    user = await User.filter(id=user_id).first()
    ticket = await Ticket.filter(id=ticket_id).first()
    if user is None or ticket is None:
        return False
    return role_of(user, ticket, (await _shop_owners([ticket.merchant_id])).get(ticket.merchant_id)) is not None


# -- opening, writing, finishing ----------------------------------------------------------------


def _body(text: str | None, *, required: bool = True) -> str:
    body = (text or "").strip()
    if required and not body:
        raise invalid("message", "Say what happened.")
    if len(body) > BODY_MAX:
        raise invalid("message", f"At most {BODY_MAX} characters.")
    return body


async def _spend_limit(user: User) -> None:
    if not await runtime.limiter().hit(get_settings().ticket_message_limit, "tickets", str(user.id)):
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many ticket messages; wait a minute and try again.")


async def open_ticket(actor: Actor, order_id: int, reason: TicketReason, message: str) -> Ticket:
    """The signed-in buyer of a paid order opens a ticket about it, with a first message.
    One active ticket per order (DUPLICATE while one is open)."""
    user = permissions.require_signed_in(actor)
    body = _body(message)
    order = await Order.filter(id=order_id).first()
    if order is None or order.buyer_id != user.id:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such order.", "orderId")
    await _spend_limit(user)
    priority = await is_priority(user)
    first_response, resolution = clocks(priority)
    async with outbox.atomic():
        # The auto-complete sweep takes this lock before it looks for tickets.
        current = await Order.filter(id=order_id).select_for_update().get()
        if current.status not in TICKETABLE:
            raise UserFacingError(
                ErrorCode.INVALID_STATE, f"An order that is {current.status.value} takes no ticket.", "orderId")
        if await Ticket.filter(order_id=order_id, status__in=list(ACTIVE)).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "This order has an open ticket already.", "orderId")
        now = clock.now()
        ticket = await Ticket.create(
            order_id=order_id, buyer_id=user.id, merchant_id=current.merchant_id, reason=reason,
            status=TicketStatus.OPEN, priority=priority, first_response_due_at=now + first_response,
            resolution_due_at=now + resolution, due_at=now + first_response,
        )
        entry = await TicketEntry.create(ticket=ticket, kind=EntryKind.MESSAGE, author_id=user.id,
                                         author_role=AuthorRole.BUYER, body=body, status=TicketStatus.OPEN)
        await _announce(ticket, entry, f"New ticket on order {current.order_no}: {reason.value}")
    await after_open(actor, ticket)
    return ticket


async def after_open(actor: Actor, ticket: Ticket) -> None:
    """Runs once a ticket is opened and committed: KEY_INVALID and NOT_RECEIVED go through
    self-service (resolvers/trust/claims.py) at once, and what it did (a replacement key, a
    refund, a review by staff), or why its rules did not apply, is a system note on the ticket.
    The ticket stays open: the buyer confirms or keeps talking, and staff see the claim."""
    reason = _SELF_SERVICE.get(ticket.reason)
    if reason is None:
        return
    try:
        claim = await claims.self_serve(actor, ticket.order_id, reason, ticket_id=ticket.id)
        note = _CLAIM_NOTES.get((claim.status, claim.outcome), "Your report was filed for review by staff.")
    except UserFacingError as refused:
        note = f"Self-service could not settle this ({refused.message}) The shop and staff will answer here."
    async with outbox.atomic():
        entry = await TicketEntry.create(ticket=ticket, kind=EntryKind.MESSAGE, author_id=None,
                                         author_role=AuthorRole.SYSTEM, body=note, status=ticket.status)
        await _announce(ticket, entry, f"Your ticket #{ticket.id}: {note[:80]}")


_SELF_SERVICE = {TicketReason.KEY_INVALID: ClaimReason.KEY_INVALID, TicketReason.NOT_RECEIVED: ClaimReason.NOT_RECEIVED}
_CLAIM_NOTES = {
    (ClaimStatus.RESOLVED, ClaimOutcome.REPLACEMENT): "A replacement key was delivered to your order.",
    (ClaimStatus.RESOLVED, ClaimOutcome.REFUND): "You were refunded for this.",
    (ClaimStatus.PENDING_REVIEW, ClaimOutcome.NONE): "Your report is outside the automatic rules: staff will decide.",
}


async def reply(actor: Actor, ticket_id: int, message: str) -> TicketEntry:
    """A participant writes. The shop's or staff's first message stops the first-response
    clock; the status moves as the table above says."""
    ticket, role, user = await _participant(actor, ticket_id)
    body = _body(message)
    if ticket.status in FINISHED:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"This ticket is {ticket.status.value}.", "ticketId")
    await _spend_limit(user)
    async with outbox.atomic():
        current = await Ticket.filter(id=ticket_id).select_for_update().get()
        if current.status in FINISHED:
            raise UserFacingError(ErrorCode.INVALID_STATE, f"This ticket is {current.status.value}.", "ticketId")
        status = _after_message(current.status, role)
        changes: dict[str, Any] = {}
        now = clock.now()
        if role != AuthorRole.BUYER and current.first_response_at is None:
            changes.update(first_response_at=now,
                           first_response_seconds=max(0, int((now - current.created_at).total_seconds())))
        entry = await TicketEntry.create(ticket=current, kind=EntryKind.MESSAGE, author_id=user.id,
                                         author_role=role, body=body, status=status)
        # The message carries the status it left the ticket in: no separate entry for it.
        await _move(current, status, changes)
        await _announce(current, entry, f"New message on your ticket #{current.id}")
    return entry


def _after_message(status: TicketStatus, role: AuthorRole) -> TicketStatus:
    if status == TicketStatus.ESCALATED:
        return status
    if role == AuthorRole.BUYER:
        return TicketStatus.WAITING_ON_MERCHANT if status == TicketStatus.WAITING_ON_BUYER else status
    return TicketStatus.WAITING_ON_BUYER


async def finish(actor: Actor, ticket_id: int, target: TicketStatus, note: str = "") -> Ticket:
    """RESOLVED or CLOSED, by the buyer or staff (the shop cannot close a complaint about
    itself). The hold on the order's escrow ends with it."""
    if target not in FINISHED:
        raise ValueError(target)
    ticket, role, user = await _participant(actor, ticket_id)
    if role == AuthorRole.MERCHANT:
        permissions.require(actor, Action.DECIDE_TICKET)  # FORBIDDEN unless also staff
    body = _body(note, required=False)
    async with outbox.atomic():
        current = await Ticket.filter(id=ticket_id).select_for_update().get()
        if current.status in FINISHED:
            raise UserFacingError(ErrorCode.INVALID_STATE, f"This ticket is {current.status.value}.", "ticketId")
        now = clock.now()
        changes: dict[str, Any] = {"resolved_at": now}
        if target == TicketStatus.RESOLVED:
            changes["resolution_seconds"] = max(0, int((now - current.created_at).total_seconds()))
        await _move(current, target, changes)
        await _status_entry(current, target, user.id, role, body)
    return current


async def _move(ticket: Ticket, status: TicketStatus, changes: dict[str, Any]) -> None:
    """Conditional on the status read (the row is locked too, where the database can)."""
    first_response_at = changes.get("first_response_at", ticket.first_response_at)
    changes = {**changes, "status": status, "due_at": next_due(ticket, status, first_response_at),
               "updated_at": clock.now()}
    if await Ticket.filter(id=ticket.id, status=ticket.status).update(**changes) != 1:
        raise UserFacingError(ErrorCode.INVALID_STATE, "The ticket changed meanwhile; try again.", "ticketId")
    for name, value in changes.items():
        setattr(ticket, name, value)


async def _status_entry(ticket: Ticket, status: TicketStatus, author_id: int | None, role: AuthorRole,
                        note: str) -> TicketEntry:
    entry = await TicketEntry.create(ticket=ticket, kind=EntryKind.STATUS, author_id=author_id, author_role=role,
                                     body=note, status=status)
    await _announce(ticket, entry, f"Your ticket #{ticket.id} is now {status.value.replace('_', ' ').lower()}")
    return entry


async def _announce(ticket: Ticket, entry: TicketEntry, title: str) -> None:
    """The live event for everyone following the ticket, and a notification to the buyer
    and the shop's owner (not to whoever wrote it)."""
    await outbox.emit(topic_for(ticket.id), {"ticket": ticket.id, "entry": entry.id})
    owner = (await _shop_owners([ticket.merchant_id])).get(ticket.merchant_id)
    kind = "TICKET_MESSAGE" if entry.kind == EntryKind.MESSAGE else "TICKET_STATUS"
    for user_id in {ticket.buyer_id, owner} - {entry.author_id, None}:
        assert user_id is not None
        await notifications.notify(
            user_id, kind, title, entry.body[:200],
            {"ticketId": ticket.id, "orderId": ticket.order_id, "status": entry.status.value},
            dedupe_key=f"ticket:{entry.id}:{user_id}",
        )


# -- the escalation sweep -----------------------------------------------------------------------


async def escalate_overdue(limit: int = 500) -> int:
    """Tickets past their next deadline (no first response, or not resolved in time) go to
    staff: ESCALATED, with a system entry saying which clock ran out. Idempotent."""
    now = clock.now()
    due = await Ticket.filter(
        status__in=[TicketStatus.OPEN, TicketStatus.WAITING_ON_MERCHANT, TicketStatus.WAITING_ON_BUYER],
        due_at__lte=now,
    ).order_by("due_at", "id").limit(limit)
    escalated = 0
    for ticket in due:
        which = "first response" if ticket.first_response_at is None else "resolution"
        async with outbox.atomic():
            if await Ticket.filter(id=ticket.id, status=ticket.status).update(
                status=TicketStatus.ESCALATED, escalated_at=now, updated_at=now
            ) != 1:
                continue  # answered, finished or escalated meanwhile
            ticket.status, ticket.escalated_at = TicketStatus.ESCALATED, now
            await _status_entry(ticket, TicketStatus.ESCALATED, None, AuthorRole.SYSTEM,
                                f"Escalated to staff: the {which} deadline passed.")
            escalated += 1
    return escalated


# -- reading ------------------------------------------------------------------------------------


async def mine(actor: Actor, *, status: TicketStatus | None = None, **page: Any) -> Page[Ticket]:
    """Tickets the viewer opened, or about orders of a shop they own; newest first."""
    user = permissions.require_signed_in(actor)
    shops = await Merchant.filter(owner_id=user.id).values_list("id", flat=True)
    queryset = Ticket.filter(Q(buyer_id=user.id) | Q(merchant_id__in=list(shops)))
    if status is not None:
        queryset = queryset.filter(status=status)
    return await paginate(queryset, **page)


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError
    return datetime.fromisoformat(value)


async def queue(actor: Actor, **page: Any) -> Page[Ticket]:
    """Staff: every active ticket, the most overdue (earliest next deadline) first."""
    permissions.require(actor, Action.DECIDE_TICKET)
    return await paginate_by(Ticket.filter(status__in=list(ACTIVE)), "due_at", descending=False,
                             parse=_parse_time, **page)


async def tickets_of_orders(order_ids: list[int]) -> list[list[Ticket]]:
    """Batch load for DataLoaders: each order's tickets, oldest first (the order's own
    visibility decides who may ask)."""
    grouped: dict[int, list[Ticket]] = {i: [] for i in order_ids}
    for ticket in await Ticket.filter(order_id__in=order_ids).order_by("id"):
        grouped[ticket.order_id].append(ticket)
    return [grouped[i] for i in order_ids]


async def entries(ticket_id: int, **page: Any) -> Page[TicketEntry]:
    """A ticket's history, oldest first (the caller checked the ticket is visible)."""
    return await paginate(TicketEntry.filter(ticket_id=ticket_id), newest_first=False, **page)


async def entries_after(ticket_id: int, after: int, limit: int = 100) -> list[TicketEntry]:
    return list(await TicketEntry.filter(ticket_id=ticket_id, id__gt=after).order_by("id").limit(limit))


async def entry(ticket_id: int, entry_id: int) -> TicketEntry | None:
    return await TicketEntry.filter(id=entry_id, ticket_id=ticket_id).first()
