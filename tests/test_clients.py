"""Off-the-shelf WebSocket clients receive Kameng's subscriptions: Python gql on both of its
transports (graphql-transport-ws and Apollo's older graphql-ws) and npm graphql-ws under Node,
the client inside Apollo's GraphQLWsLink, urql and GraphiQL. Each of them refuses binary
frames, so a regression in the frame format fails here."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from gql import Client as GqlClient
from gql import GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from tests import nodejs
from tests.conftest import Client, Stack
from tests.factories import make_product
from tests.test_delivery import CREATE, PAY, buyer_client, gid

NOTIFICATIONS = "subscription($after: ID) { notificationReceived(after: $after) { id kind title } }"
TRACK = "subscription($id: ID!) { orderStatusChanged(orderId: $id) { status note } }"
GQL_PROTOCOLS = [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL]


async def signed_in_with_welcome(client: Client) -> tuple[dict[str, Any], str]:
    """A new account and the id of its welcome notification: subscribing after it replays
    whatever came later, so the event cannot slip in before the subscription starts."""
    account = await client.register()
    data = await client.gql("{ viewer { notifications(first: 1) { edges { node { id } } } } }")
    return account, data["viewer"]["notifications"]["edges"][0]["node"]["id"]


async def unpaid_order(make_client) -> tuple[Client, str]:  # type: ignore[no-untyped-def]
    product = await make_product(keys=1)
    buyer, _ = await buyer_client(make_client)
    created = await buyer.gql(CREATE, {"input": {
        "productId": gid("Product", product.id), "idempotencyKey": uuid.uuid4().hex}})
    return buyer, created["createOrder"]["order"]["id"]


async def pay(buyer: Client, order_id: str) -> None:
    paid = (await buyer.gql(PAY, {"input": {"orderId": order_id, "method": "WALLET"}}))["payOrder"]
    assert paid["errors"] == []


@asynccontextmanager
async def gql_subscription(stack: Stack, protocol: str, token: str, query: str,
                           variables: dict[str, Any]) -> AsyncIterator[Any]:
    transport = WebsocketsTransport(url=stack.ws_url, init_payload={"Authorization": f"Bearer {token}"},
                                    subprotocols=[protocol])
    async with GqlClient(transport=transport) as session:
        results = session.subscribe(GraphQLRequest(query, variable_values=variables))
        try:
            yield results
        finally:
            await results.aclose()
        assert transport.subprotocol == protocol


@pytest.mark.parametrize("protocol", GQL_PROTOCOLS)
async def test_gql_receives_notifications(stack: Stack, client: Client, make_client, protocol: str) -> None:  # type: ignore[no-untyped-def]
    account, welcome = await signed_in_with_welcome(client)
    async with gql_subscription(stack, protocol, client.token or "", NOTIFICATIONS, {"after": welcome}) as results:
        await make_client().login(account["email"], account["password"])
        note = await asyncio.wait_for(anext(results), 10)
    assert note["notificationReceived"]["kind"] == "NEW_SIGNIN"


@pytest.mark.parametrize("protocol", GQL_PROTOCOLS)
async def test_gql_tracks_an_order(stack: Stack, make_client, protocol: str) -> None:  # type: ignore[no-untyped-def]
    buyer, order_id = await unpaid_order(make_client)
    async with gql_subscription(stack, protocol, buyer.token or "", TRACK, {"id": order_id}) as results:
        first = await asyncio.wait_for(anext(results), 10)
        assert first["orderStatusChanged"]["status"] == "PENDING_PAYMENT"
        await pay(buyer, order_id)
        statuses = [(await asyncio.wait_for(anext(results), 10))["orderStatusChanged"]["status"] for _ in range(3)]
    assert statuses == ["PAID", "DELIVERING", "DELIVERED"]


async def test_graphql_ws_under_node_receives_notifications(stack: Stack, client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    account, welcome = await signed_in_with_welcome(client)
    node = await nodejs.start("subscribe.mjs", stack.ws_url, client.token or "", "1", NOTIFICATIONS,
                              json.dumps({"after": welcome}))
    try:
        assert (await node.next())["event"] == "connected"
        await make_client().login(account["email"], account["password"])
        received = await node.next()
        assert received["event"] == "next", received
        assert received["payload"]["data"]["notificationReceived"]["kind"] == "NEW_SIGNIN"
        assert (await node.next())["event"] == "done"
    finally:
        assert await node.close() == 0


async def test_graphql_ws_under_node_tracks_an_order(stack: Stack, make_client) -> None:  # type: ignore[no-untyped-def]
    buyer, order_id = await unpaid_order(make_client)
    node = await nodejs.start("subscribe.mjs", stack.ws_url, buyer.token or "", "4", TRACK, json.dumps({"id": order_id}))
    try:
        assert (await node.next())["event"] == "connected"
        first = await node.next()
        assert first["event"] == "next", first
        assert first["payload"]["data"]["orderStatusChanged"]["status"] == "PENDING_PAYMENT"
        await pay(buyer, order_id)
        statuses = [(await node.next())["payload"]["data"]["orderStatusChanged"]["status"] for _ in range(3)]
        assert statuses == ["PAID", "DELIVERING", "DELIVERED"]
        assert (await node.next())["event"] == "done"
    finally:
        assert await node.close() == 0


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_every_frame_is_a_text_frame(stack: Stack, protocol: str) -> None:
    async with websockets.connect(stack.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(ack, str) and json.loads(ack)["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": NOTIFICATIONS}}))
        frame = await asyncio.wait_for(ws.recv(), 5)
        while json.loads(frame)["type"] == "ka":
            frame = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(frame, str)
        message = json.loads(frame)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
