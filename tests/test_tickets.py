"""After-sales tickets (issue 14, items 1 and 2): an open ticket holds a delivered order's
auto-completion (and its escrow) until it is resolved, also when it is opened while the sweep
runs; an overdue ticket escalates through the sweep; GOLD buyers and PRIORITY_SUPPORT holders
get the shorter SLA; participants receive live events over real graphql-transport-ws and
graphql-ws connections; strangers can neither read nor write."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from strawberry.relay import GlobalID

from models.accounts.notifications import Notification
from models.accounts.users import Role, Tier, User
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.merchants import Merchant
from models.commerce.orders import Order, OrderStatus
from models.trust.tickets import AuthorRole, EntryKind, Ticket, TicketEntry, TicketStatus
from resolvers.accounts.auth import Actor
from resolvers.commerce import escrow, ledger, settlement
from resolvers.commerce.orders import new_order_no
from resolvers.loyalty import points
from resolvers.trust import tickets
from subscriptions import outbox
from tests.conftest import Client, Stack, eventually
from tests.factories import make_merchant, make_product, make_user, token_for
from tests.test_ledger import assert_ledger_consistent
from tests.test_subscriptions import connect, recv
from workers.scheduler import SWEEPS

OPEN = """mutation($input: OpenTicketInput!) { openTicket(input: $input) { errors { code field }
  ticket { id status priority createdAt firstResponseDueAt resolutionDueAt } } }"""
REPLY = """mutation($input: ReplyToTicketInput!) { replyToTicket(input: $input) { errors { code field }
  ticket { status firstResponseAt } entry { body authorRole status } } }"""
RESOLVE = """mutation($input: FinishTicketInput!) { resolveTicket(input: $input) { errors { code field }
  ticket { status resolvedAt } } }"""
TICKET = """query($id: ID!) { node(id: $id) { ... on Ticket { status reason order { orderNo }
  entries(first: 10) { edges { node { kind authorRole body status } } } } } }"""
LIVE = """subscription($id: ID!, $after: ID) { ticketUpdated(ticketId: $id, after: $after) {
  id kind authorRole body status } }"""


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def delivered_order(buyer: User, shop: Merchant | None = None, *, days_ago: float = 10,
                          total: str = "20.00", product: Product | None = None) -> Order:
    """A DELIVERED order of ``buyer`` whose total sits in escrow, delivered ``days_ago``."""
    shop = shop or await make_merchant()
    product = product or await make_product(shop, kind=DeliveryKind.MANUAL, price=total)
    now = datetime.now(UTC)
    order = await Order.create(
        order_no=new_order_no(), buyer=buyer, product=product, merchant=shop, quantity=1, unit_price=Decimal(total),
        total=Decimal(total), status=OrderStatus.DELIVERED, idempotency_scope=f"u:{buyer.id}",
        idempotency_key=uuid.uuid4().hex, expires_at=now, paid_at=now - timedelta(days=days_ago, minutes=5),
        delivered_at=now - timedelta(days=days_ago), delivery_seconds=300, promised_minutes=10,
    )
    await ledger.post("order.pay", str(order.id), [(ledger.ADJUSTMENTS, -order.total), (ledger.escrow(order.id), order.total)])
    return order


async def client_of(make_client: Any, user: User) -> Client:
    client: Client = make_client()
    client.token = await token_for(user)
    return client


async def open_on(client: Client, order: Order, reason: str = "KEY_INVALID", message: str = "The key says used") -> dict[str, Any]:
    return (await client.gql(OPEN, {"input": {"orderId": gid("Order", order.id), "reason": reason, "message": message}}))["openTicket"]


async def test_an_open_ticket_holds_auto_complete_until_it_is_resolved(make_client) -> None:  # type: ignore[no-untyped-def]
    buyer = await make_user()
    order = await delivered_order(buyer)
    api = await client_of(make_client, buyer)
    opened = await open_on(api, order)
    assert opened["errors"] == [] and opened["ticket"]["status"] == "OPEN"
    again = await open_on(api, order, "OTHER")
    assert [e["code"] for e in again["errors"]] == ["DUPLICATE"]

    await settlement.complete_delivered_orders()
    assert (await Order.get(id=order.id)).status == OrderStatus.DELIVERED
    assert await ledger.balance(ledger.escrow(order.id)) == Decimal("20.00")  # the money is held

    resolved = (await api.gql(RESOLVE, {"input": {"ticketId": opened["ticket"]["id"], "note": "new key works"}}))
    assert resolved["resolveTicket"]["errors"] == [] and resolved["resolveTicket"]["ticket"]["status"] == "RESOLVED"
    await settlement.complete_delivered_orders()
    current = await Order.get(id=order.id)
    assert current.status == OrderStatus.COMPLETED
    assert await ledger.balance(ledger.escrow(order.id)) == Decimal("0.00")
    assert await ledger.balance(ledger.merchant_balance(order.merchant_id)) == Decimal("20.00") - escrow.fee(current)
    await assert_ledger_consistent()


async def test_a_ticket_opened_while_the_sweep_runs_is_never_lost(make_client) -> None:  # type: ignore[no-untyped-def]
    """Either the ticket is there before the sweep looks (the order stays DELIVERED, in
    escrow) or the order completed first and the ticket came after it: never an order
    completed under a ticket that was already open."""
    buyer = await make_user()
    api = await client_of(make_client, buyer)
    for _ in range(6):
        order = await delivered_order(buyer)
        opened, _ = await asyncio.gather(open_on(api, order), settlement.complete_delivered_orders())
        assert opened["errors"] == [], opened
        ticket = await Ticket.get(id=pk(opened["ticket"]["id"]))
        current = await Order.get(id=order.id)
        if current.status == OrderStatus.COMPLETED:
            assert ticket.created_at >= current.updated_at, "completed under an open ticket"
        else:
            assert current.status == OrderStatus.DELIVERED
            assert await ledger.balance(ledger.escrow(order.id)) == order.total
            await settlement.complete_delivered_orders()
            assert (await Order.get(id=order.id)).status == OrderStatus.DELIVERED
    await assert_ledger_consistent()


async def test_an_overdue_ticket_escalates_through_the_sweep(make_client) -> None:  # type: ignore[no-untyped-def]
    assert tickets.escalate_overdue in SWEEPS
    buyer, owner, staff = await make_user(), await make_user(Role.MERCHANT), await make_user(Role.MODERATOR)
    shop = await make_merchant(owner)
    api = await client_of(make_client, buyer)
    late = await open_on(api, await delivered_order(buyer, shop))
    fresh = await open_on(api, await delivered_order(buyer, shop))
    late_id, fresh_id = pk(late["ticket"]["id"]), pk(fresh["ticket"]["id"])
    past = datetime.now(UTC) - timedelta(minutes=1)
    await Ticket.filter(id=late_id).update(first_response_due_at=past, due_at=past)

    assert await tickets.escalate_overdue() >= 1
    await tickets.escalate_overdue()  # again: nothing more for this one
    escalated = await Ticket.get(id=late_id)
    assert escalated.status == TicketStatus.ESCALATED and escalated.escalated_at is not None
    assert (await Ticket.get(id=fresh_id)).status == TicketStatus.OPEN
    entry = await TicketEntry.filter(ticket_id=late_id, kind=EntryKind.STATUS).get()
    assert entry.author_role == AuthorRole.SYSTEM and "first response" in entry.body
    for user in (buyer, owner):  # only the late ticket changed status
        assert await Notification.filter(user_id=user.id, kind="TICKET_STATUS").count() == 1

    # The staff queue: the overdue one first; the shop may not read the queue.
    desk = await client_of(make_client, staff)
    queue = (await desk.gql("{ ticketQueue(first: 100) { edges { node { id overdue status } } } }"))["ticketQueue"]
    mine = [e["node"] for e in queue["edges"] if pk(e["node"]["id"]) in (late_id, fresh_id)]
    assert [pk(n["id"]) for n in mine] == [late_id, fresh_id]
    assert mine[0]["overdue"] is True and mine[0]["status"] == "ESCALATED" and mine[1]["overdue"] is False
    shop_api = await client_of(make_client, owner)
    refused = (await shop_api.post("{ ticketQueue(first: 5) { edges { node { id } } } }")).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_gold_buyers_and_perk_holders_get_the_shorter_sla(make_client) -> None:  # type: ignore[no-untyped-def]
    normal, gold, perk = await make_user(), await make_user(), await make_user()
    await User.filter(id=gold.id).update(tier=Tier.GOLD)
    async with outbox.atomic():
        await points.post(perk.id, "task", f"test:{uuid.uuid4().hex}", 600, "test grant")
    await points.redeem_perk(Actor(user=perk), "PRIORITY_SUPPORT")
    clocks: dict[str, tuple[bool, timedelta, timedelta]] = {}
    for name, user in (("normal", normal), ("gold", gold), ("perk", perk)):
        api = await client_of(make_client, user)
        ticket = (await open_on(api, await delivered_order(user)))["ticket"]
        opened = datetime.fromisoformat(ticket["createdAt"])
        clocks[name] = (ticket["priority"], datetime.fromisoformat(ticket["firstResponseDueAt"]) - opened,
                        datetime.fromisoformat(ticket["resolutionDueAt"]) - opened)
    minutes = lambda d: round(d.total_seconds() / 60)  # noqa: E731
    assert (clocks["normal"][0], minutes(clocks["normal"][1]), minutes(clocks["normal"][2])) == (False, 240, 1440)
    for name in ("gold", "perk"):
        assert (clocks[name][0], minutes(clocks[name][1]), minutes(clocks[name][2])) == (True, 60, 480), name


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_participants_receive_live_events(stack: Stack, make_client, protocol: str) -> None:  # type: ignore[no-untyped-def]
    buyer, owner, stranger = await make_user(), await make_user(Role.MERCHANT), await make_user()
    shop = await make_merchant(owner)
    api, shop_api = await client_of(make_client, buyer), await client_of(make_client, owner)
    opened = await open_on(api, await delivered_order(buyer, shop))
    ticket_id = opened["ticket"]["id"]
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    data = "next" if protocol == "graphql-transport-ws" else "data"

    async def subscribed(user: User) -> Any:
        ws = await connect(stack, protocol, await token_for(user))
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": LIVE, "variables": {"id": ticket_id}}}))
        return ws

    buyer_ws, shop_ws, stranger_ws = await subscribed(buyer), await subscribed(owner), await subscribed(stranger)
    try:
        refused = await recv(stranger_ws)
        assert refused["type"] in ("error", "next", "data") and "FORBIDDEN" in json.dumps(refused), refused
        await asyncio.sleep(0.3)  # both listening
        answer = (await shop_api.gql(REPLY, {"input": {"ticketId": ticket_id, "message": "Sending a new key"}}))
        assert answer["replyToTicket"]["errors"] == []
        assert answer["replyToTicket"]["ticket"]["status"] == "WAITING_ON_BUYER"
        for ws in (buyer_ws, shop_ws):
            message = await recv(ws)
            assert message["type"] == data, message
            event = message["payload"]["data"]["ticketUpdated"]
            assert (event["kind"], event["authorRole"], event["body"], event["status"]) == (
                "MESSAGE", "MERCHANT", "Sending a new key", "WAITING_ON_BUYER")
        await api.gql(RESOLVE, {"input": {"ticketId": ticket_id, "note": "works now"}})
        for ws in (buyer_ws, shop_ws):
            event = (await recv(ws))["payload"]["data"]["ticketUpdated"]
            assert (event["kind"], event["authorRole"], event["status"]) == ("STATUS", "BUYER", "RESOLVED")
    finally:
        for ws in (buyer_ws, shop_ws, stranger_ws):
            await ws.close()

    async def notified() -> bool:
        return await Notification.filter(user_id=buyer.id, kind="TICKET_MESSAGE").exists() and \
            await Notification.filter(user_id=owner.id, kind="TICKET_STATUS").exists()

    await eventually(notified)


async def test_strangers_cannot_read_or_reply_and_the_shop_cannot_resolve(make_client) -> None:  # type: ignore[no-untyped-def]
    buyer, owner, stranger, other_shop = (await make_user(), await make_user(Role.MERCHANT), await make_user(),
                                          await make_user(Role.MERCHANT))
    shop = await make_merchant(owner)
    order = await delivered_order(buyer, shop)
    api = await client_of(make_client, buyer)
    ticket_id = (await open_on(api, order))["ticket"]["id"]
    for user in (stranger, other_shop):
        outsider = await client_of(make_client, user)
        assert (await outsider.gql(TICKET, {"id": ticket_id}))["node"] is None
        reply = (await outsider.gql(REPLY, {"input": {"ticketId": ticket_id, "message": "hi"}}))["replyToTicket"]
        assert [e["code"] for e in reply["errors"]] == ["FORBIDDEN"]
        mine = (await outsider.gql("{ myTickets(first: 50) { edges { node { id } } } }"))["myTickets"]["edges"]
        assert ticket_id not in [e["node"]["id"] for e in mine]
        foreign = await open_on(outsider, order)  # not their order
        assert [e["code"] for e in foreign["errors"]] == ["NOT_FOUND"]
    anonymous = make_client()
    assert (await anonymous.gql(TICKET, {"id": ticket_id}))["node"] is None
    # The buyer's message, and self-service's note (the key was never shown: not for the rules).
    assert await TicketEntry.filter(ticket_id=pk(ticket_id)).exclude(author_role="SYSTEM").count() == 1

    shop_api = await client_of(make_client, owner)
    seen = (await shop_api.gql(TICKET, {"id": ticket_id}))["node"]
    assert seen["reason"] == "KEY_INVALID" and seen["order"]["orderNo"] == order.order_no
    assert seen["entries"]["edges"][0]["node"] == {"kind": "MESSAGE", "authorRole": "BUYER",
                                                   "body": "The key says used", "status": "OPEN"}
    shop_tickets = (await shop_api.gql("{ myTickets(first: 50) { edges { node { id } } } }"))["myTickets"]["edges"]
    assert ticket_id in [e["node"]["id"] for e in shop_tickets]
    refused = (await shop_api.gql(RESOLVE, {"input": {"ticketId": ticket_id}}))["resolveTicket"]
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    order_view = await api.gql("query($id: ID!) { node(id: $id) { ... on Order { tickets { id status } } } }",
                               {"id": gid("Order", order.id)})
    assert order_view["node"]["tickets"] == [{"id": ticket_id, "status": "OPEN"}]
    blank = (await api.gql(REPLY, {"input": {"ticketId": ticket_id, "message": "   "}}))["replyToTicket"]
    assert [(e["code"], e["field"]) for e in blank["errors"]] == [("INVALID_INPUT", "message")]
