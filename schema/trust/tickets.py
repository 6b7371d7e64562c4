"""After-sales tickets in the graph: the Ticket node, opening and answering one, the buyer's,
shop's and staff's lists, and the live ``ticketUpdated`` stream (resolvers/trust/tickets.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from kameng import runtime
from models.trust.tickets import AuthorRole as AuthorRoleValue
from models.trust.tickets import EntryKind as EntryKindValue
from models.trust.tickets import Ticket as TicketModel
from models.trust.tickets import TicketEntry as TicketEntryModel
from models.trust.tickets import TicketReason as TicketReasonValue
from models.trust.tickets import TicketStatus as TicketStatusValue
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.trust import tickets
from schema.base import (
    After, Before, Connection, First, Last, UserError, decode_id, describe_values, errors_field, graph_type, in_graph,
    mutation, node_keys,
)
from schema.context import Info

if TYPE_CHECKING:
    from schema.commerce.orders import Order

TicketReason = describe_values(
    strawberry.enum(TicketReasonValue, name="TicketReason", description="What a ticket is about."),
    NOT_RECEIVED="The buyer did not receive what they paid for.",
    KEY_INVALID="A delivered card key does not work.",
    WRONG_ITEM="The buyer received something other than what they ordered.",
    OTHER="Anything else about the order.",
)

TicketStatus = describe_values(
    strawberry.enum(
        TicketStatusValue, name="TicketStatus",
        description="Where a ticket is: OPEN → WAITING_ON_BUYER ⇄ WAITING_ON_MERCHANT, ESCALATED to staff when a "
                    "deadline passes, and finally RESOLVED or CLOSED.",
    ),
    OPEN="Opened; nobody has answered yet.",
    WAITING_ON_MERCHANT="The buyer wrote last: the shop (or staff) is to answer.",
    WAITING_ON_BUYER="The shop or staff answered: the buyer is to answer.",
    ESCALATED="A deadline passed: staff handle it now.",
    RESOLVED="Resolved, by the buyer or staff. Final.",
    CLOSED="Withdrawn by the buyer or closed by staff without a resolution. Final.",
)

TicketAuthorRole = describe_values(
    strawberry.enum(AuthorRoleValue, name="TicketAuthorRole", description="In which capacity an entry was written."),
    BUYER="The buyer of the order.",
    MERCHANT="The owner of the shop that sold it.",
    STAFF="A moderator or admin of the platform.",
    SYSTEM="The platform itself (e.g. the escalation sweep).",
)

TicketEntryKind = describe_values(
    strawberry.enum(EntryKindValue, name="TicketEntryKind", description="What a ticket entry records."),
    MESSAGE="A message written by a participant.",
    STATUS="A status change (resolution, closing, escalation), with its note.",
)


@strawberry.type(description="One line of a ticket's history: a message or a status change.")
class TicketEntry:
    id: strawberry.ID = strawberry.field(description="The entry's ID; pass the last one seen as `after` to resume.")
    kind: TicketEntryKind = strawberry.field(description="Message or status change.")
    author_role: TicketAuthorRole = strawberry.field(description="Who wrote it, by capacity.")
    body: str = strawberry.field(description="The message, or the status change's note (may be empty). Plain text.")
    status: TicketStatus = strawberry.field(description="The ticket's status right after this entry.")
    at: datetime = strawberry.field(description="When it was written.")
    ticket_id: strawberry.ID = strawberry.field(description="The ticket's global ID.")

    @classmethod
    def from_model(cls, entry: TicketEntryModel) -> TicketEntry:
        return cls(
            id=strawberry.ID(relay.to_base64("TicketEntry", entry.id)), kind=entry.kind,
            author_role=entry.author_role, body=entry.body, status=entry.status, at=entry.at,
            ticket_id=strawberry.ID(relay.to_base64("Ticket", entry.ticket_id)),
        )


@in_graph
@strawberry.type(description="An after-sales ticket about one order: for its buyer, the shop's owner and staff.")
class Ticket(relay.Node):
    id: relay.NodeID[int]
    reason: TicketReason = strawberry.field(description="What it is about.")
    status: TicketStatus = strawberry.field(description="Where it is.")
    priority: bool = strawberry.field(
        description="Opened by a priority buyer (GOLD, or holding the PRIORITY_SUPPORT perk): shorter deadlines.")
    created_at: datetime = strawberry.field(description="When it was opened.")
    first_response_due_at: datetime = strawberry.field(description="The shop or staff should answer by then.")
    resolution_due_at: datetime = strawberry.field(description="It should be resolved by then.")
    first_response_at: datetime | None = strawberry.field(description="When the shop or staff first answered.")
    escalated_at: datetime | None = strawberry.field(description="When it was escalated to staff; null if never.")
    resolved_at: datetime | None = strawberry.field(description="When it was resolved or closed; null before.")
    due_at: datetime | None = strawberry.field(
        description="The next deadline that counts (first response, then resolution); null once finished.")
    _model: strawberry.Private[TicketModel]

    @strawberry.field(description="True when `dueAt` has passed.")
    def overdue(self) -> bool:
        return tickets.is_overdue(self._model)

    @strawberry.field(description="The order it is about; null if the viewer may no longer see it.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.commerce.orders")] | None:
        (found,) = await graph_type("Order").resolve_nodes(info=info, node_ids=[str(self._model.order_id)])
        return found

    @strawberry.field(description="The ticket's messages and status changes, oldest first.")
    async def entries(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> Connection[TicketEntry]:
        page = await tickets.entries(self.id, first=first, after=after, last=last, before=before)
        return Connection.of(page, TicketEntry.from_model)

    @classmethod
    def from_model(cls, ticket: TicketModel) -> Ticket:
        return cls(
            id=ticket.id, reason=ticket.reason, status=ticket.status, priority=ticket.priority,
            created_at=ticket.created_at, first_response_due_at=ticket.first_response_due_at,
            resolution_due_at=ticket.resolution_due_at, first_response_at=ticket.first_response_at,
            escalated_at=ticket.escalated_at, resolved_at=ticket.resolved_at, due_at=ticket.due_at, _model=ticket,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Ticket | None]:
        keys = node_keys(node_ids)
        found = await tickets.visible_tickets(info.context.actor, [k for k in keys if k is not None])
        by_id = {t.id: t for t in found if t is not None}
        return [cls.from_model(by_id[k]) if k in by_id else None for k in keys]


# -- mutations ------------------------------------------------------------------------------


@strawberry.input(description="A complaint about one of the viewer's orders.")
class OpenTicketInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID (the viewer bought it).")
    reason: TicketReason = strawberry.field(description="What it is about.")
    message: str = strawberry.field(description="What happened, 1 to 4000 characters.")


@strawberry.input(description="A message on a ticket.")
class ReplyToTicketInput:
    ticket_id: strawberry.ID = strawberry.field(description="The ticket's global ID.")
    message: str = strawberry.field(description="The message, 1 to 4000 characters.")


@strawberry.input(description="Ending a ticket.")
class FinishTicketInput:
    ticket_id: strawberry.ID = strawberry.field(description="The ticket's global ID.")
    note: str = strawberry.field(default="", description="Why, for the history (up to 4000 characters; may be empty).")


@strawberry.type(description="Result of a ticket mutation.")
class TicketPayload:
    errors: list[UserError] = errors_field()
    ticket: Ticket | None = strawberry.field(default=None, description="The ticket as it is now.")
    entry: TicketEntry | None = strawberry.field(default=None, description="The entry written, for `replyToTicket`.")


@strawberry.type(description="After-sales ticket mutations.")
class TicketMutations:
    @mutation(description="The buyer opens a ticket about a paid order (one open ticket per order). While it is "
                          "open, a delivered order does not complete by itself: the money stays in escrow.")
    async def open_ticket(self, info: Info, input: OpenTicketInput) -> TicketPayload:
        order_id = decode_id(input.order_id, "Order", "orderId")
        ticket = await tickets.open_ticket(info.context.actor, order_id, TicketReasonValue(input.reason), input.message)
        return TicketPayload(ticket=Ticket.from_model(ticket))

    @mutation(description="The buyer, the shop's owner or staff write on a ticket that is not finished.")
    async def reply_to_ticket(self, info: Info, input: ReplyToTicketInput) -> TicketPayload:
        ticket_id = decode_id(input.ticket_id, "Ticket", "ticketId")
        entry = await tickets.reply(info.context.actor, ticket_id, input.message)
        (ticket,) = await tickets.visible_tickets(info.context.actor, [ticket_id])
        return TicketPayload(ticket=Ticket.from_model(ticket) if ticket else None, entry=TicketEntry.from_model(entry))

    @mutation(description="The buyer or staff mark a ticket RESOLVED (not the shop: it is the shop's complaint).")
    async def resolve_ticket(self, info: Info, input: FinishTicketInput) -> TicketPayload:
        ticket_id = decode_id(input.ticket_id, "Ticket", "ticketId")
        ticket = await tickets.finish(info.context.actor, ticket_id, TicketStatusValue.RESOLVED, input.note)
        return TicketPayload(ticket=Ticket.from_model(ticket))

    @mutation(description="The buyer withdraws a ticket, or staff close it: CLOSED.")
    async def close_ticket(self, info: Info, input: FinishTicketInput) -> TicketPayload:
        ticket_id = decode_id(input.ticket_id, "Ticket", "ticketId")
        ticket = await tickets.finish(info.context.actor, ticket_id, TicketStatusValue.CLOSED, input.note)
        return TicketPayload(ticket=Ticket.from_model(ticket))


# -- queries and the live stream ------------------------------------------------------------


@strawberry.type(description="After-sales ticket lists.")
class TicketQueries:
    @strawberry.field(description="Tickets the viewer opened, and tickets about orders of shops they own; newest "
                                  "first. Signed-in only.")
    async def my_tickets(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
        status: Annotated[TicketStatus | None, strawberry.argument(description="Only tickets in this status.")] = None,
    ) -> Connection[Ticket]:
        page = await tickets.mine(info.context.actor, status=TicketStatusValue(status) if status else None,
                                  first=first, after=after, last=last, before=before)
        return Connection.of(page, Ticket.from_model)

    @strawberry.field(description="Staff: every ticket not yet finished, the most overdue (earliest `dueAt`) first.")
    async def ticket_queue(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None,
    ) -> Connection[Ticket]:
        page = await tickets.queue(info.context.actor, first=first, after=after, last=last, before=before)
        return Connection.of(page, Ticket.from_model)


@strawberry.type(description="Live ticket updates.")
class TicketSubscriptions:
    @strawberry.subscription(
        description="Every new message and status change of one ticket, for its buyer, the shop's owner and staff "
                    "(checked when subscribing and again for every event). Pass the last entry seen as `after` to "
                    "first receive what was written since (up to 100)."
    )
    async def ticket_updated(
        self, info: Info,
        ticket_id: Annotated[strawberry.ID, strawberry.argument(description="The ticket's global ID.")],
        after: Annotated[strawberry.ID | None, strawberry.argument(
            description="Resume: the ID of the last TicketEntry received.")] = None,
    ) -> AsyncGenerator[TicketEntry, None]:
        key = decode_id(ticket_id, "Ticket", "ticketId")
        last = decode_id(after, "TicketEntry", "after") if after is not None else None
        user_id = info.context.actor.user_id
        if user_id is None:
            raise UserFacingError(ErrorCode.UNAUTHENTICATED, "Sign in first.")
        if not await tickets.may_follow(user_id, key):
            raise UserFacingError(ErrorCode.FORBIDDEN, "You cannot follow this ticket.")
        async for entry in _stream(key, user_id, last):
            yield TicketEntry.from_model(entry)


async def _stream(ticket_id: int, user_id: int, after: int | None) -> AsyncGenerator[Any, None]:
    async with runtime.bus().subscribe(tickets.topic_for(ticket_id)) as events:
        sent: set[int] = set()
        if after is not None:  # listening already: nothing falls between backlog and live
            for entry in await tickets.entries_after(ticket_id, after):
                sent.add(entry.id)
                yield entry
        async for event in events:
            entry_id = int(event.data["entry"])
            if entry_id in sent or (after is not None and entry_id <= after):
                continue
            if not await tickets.may_follow(user_id, ticket_id):
                return  # no longer a participant (deactivated, role taken away): the stream ends
            entry = await tickets.entry(ticket_id, entry_id)
            if entry is not None:
                sent.add(entry.id)
                yield entry
