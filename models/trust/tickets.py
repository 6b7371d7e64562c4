"""After-sales tickets: a buyer's complaint about one order, its messages and status changes."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class TicketReason(StrEnum):
    # KEY_INVALID and NOT_RECEIVED are the names resolvers/trust/claims.py uses as well.
    NOT_RECEIVED = "NOT_RECEIVED"
    KEY_INVALID = "KEY_INVALID"
    WRONG_ITEM = "WRONG_ITEM"
    OTHER = "OTHER"


class TicketStatus(StrEnum):
    OPEN = "OPEN"  # opened, no answer yet
    WAITING_ON_MERCHANT = "WAITING_ON_MERCHANT"
    WAITING_ON_BUYER = "WAITING_ON_BUYER"
    ESCALATED = "ESCALATED"  # staff own it now
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"  # withdrawn by the buyer or closed by staff without a resolution


#: Statuses of a ticket still being worked on: such a ticket on a DELIVERED order holds
#: its auto-completion (the money stays in escrow).
ACTIVE = frozenset({TicketStatus.OPEN, TicketStatus.WAITING_ON_MERCHANT, TicketStatus.WAITING_ON_BUYER,
                    TicketStatus.ESCALATED})


class EntryKind(StrEnum):
    MESSAGE = "MESSAGE"
    STATUS = "STATUS"


class AuthorRole(StrEnum):
    BUYER = "BUYER"
    MERCHANT = "MERCHANT"
    STAFF = "STAFF"
    SYSTEM = "SYSTEM"


class Ticket(Model):
    """One complaint about one order. SLA deadlines are fixed when it is opened (shorter for
    priority buyers), and ``due_at`` is the next one that counts: the first response while
    nobody has answered, then the resolution, null once the ticket is RESOLVED or CLOSED."""

    id = fields.BigIntField(primary_key=True)
    order: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Order", related_name="tickets", on_delete=fields.RESTRICT
    )
    buyer_id = fields.BigIntField()
    merchant_id = fields.BigIntField()
    reason = fields.CharEnumField(TicketReason, max_length=20)
    status = fields.CharEnumField(TicketStatus, max_length=24, default=TicketStatus.OPEN)
    priority = fields.BooleanField(default=False)
    first_response_due_at = fields.DatetimeField()
    resolution_due_at = fields.DatetimeField()
    due_at = fields.DatetimeField(null=True)
    first_response_at = fields.DatetimeField(null=True)
    escalated_at = fields.DatetimeField(null=True)
    resolved_at = fields.DatetimeField(null=True)  # RESOLVED or CLOSED
    # Recorded when they happen, so a shop's trust profile needs no date arithmetic in SQL.
    first_response_seconds = fields.IntField(null=True)
    resolution_seconds = fields.IntField(null=True)  # RESOLVED only
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "ticket"
        indexes = (("order_id", "id"), ("buyer_id", "id"), ("merchant_id", "created_at"), ("status", "due_at"))


class TicketEntry(Model):
    """One line of a ticket's history: a message, or a status change (``status`` is the
    status the ticket had after it)."""

    id = fields.BigIntField(primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "kameng.Ticket", related_name="entries", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(EntryKind, max_length=8)
    author_id = fields.BigIntField(null=True)  # null: the system (the escalation sweep)
    author_role = fields.CharEnumField(AuthorRole, max_length=10)
    body = fields.TextField(default="")
    status = fields.CharEnumField(TicketStatus, max_length=24)
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ticket_entry"
        indexes = (("ticket_id", "id"),)
