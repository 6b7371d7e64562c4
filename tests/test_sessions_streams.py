"""Live subscriptions end with their session (issue 10): logout, logout everywhere, refresh-token
theft and access-token expiry close every socket of the session (4403), and nothing more is
sent on it -- no order event with card keys, no notification. A fresh token keeps a socket."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets

from kameng.security import AccessClaims, digest, issue_access_token, new_refresh_secret
from kameng.settings import get_settings
from models.accounts.users import AuthSession, User
from tests.conftest import Client, Stack
from tests.factories import fund, make_product
from tests.test_delivery import CREATE, PAY, gid
from tests.test_subscriptions import connect, recv

LOGOUT = "mutation($input: LogoutInput!) { logout(input: $input) { errors { code } sessionsEnded } }"
TRACK = """subscription($id: ID!) { orderStatusChanged(orderId: $id) {
  status order { orderNo cardKeys { secret } } } }"""
NOTES = "subscription { notificationReceived { id kind title } }"
PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]


def start_type(protocol: str) -> str:
    return "subscribe" if protocol == "graphql-transport-ws" else "start"


def data_type(protocol: str) -> str:
    return "next" if protocol == "graphql-transport-ws" else "data"


async def until_closed(ws: Any, timeout: float = 5.0) -> tuple[list[dict[str, Any]], websockets.ConnectionClosed]:
    """Every message received until the server closes the socket, and how it closed."""
    received: list[dict[str, Any]] = []
    while True:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        except websockets.ConnectionClosed as closed:
            return received, closed
        if message["type"] not in ("ka", "ping", "pong"):
            received.append(message)


async def signed_up_buyer(client: Client) -> tuple[dict[str, Any], User]:
    account = await client.register()
    user = await User.get(email=account["email"])
    await fund(user, "100.00")
    return account, user


async def open_streams(stack: Stack, protocol: str, token: str, order_id: str) -> Any:
    """A socket with orderStatusChanged (past its first event) and notificationReceived."""
    ws = await connect(stack, protocol, token)
    assert (await recv(ws))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": start_type(protocol),
                              "payload": {"query": TRACK, "variables": {"id": order_id}}}))
    first = await recv(ws)
    assert first["payload"]["data"]["orderStatusChanged"]["status"] == "PENDING_PAYMENT", first
    await ws.send(json.dumps({"id": "2", "type": start_type(protocol), "payload": {"query": NOTES}}))
    await asyncio.sleep(0.2)  # the notification subscription is listening
    return ws


def assert_nothing_personal(received: list[dict[str, Any]]) -> None:
    for message in received:
        data = (message.get("payload") or {}).get("data") or {}
        assert "notificationReceived" not in data, message
        event = data.get("orderStatusChanged")
        assert event is None or event["status"] == "PENDING_PAYMENT", message


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_logout_everywhere_ends_open_streams(stack: Stack, client: Client, make_client, protocol: str) -> None:  # type: ignore[no-untyped-def]
    account, _ = await signed_up_buyer(client)
    product = await make_product(keys=2)
    created = (await client.gql(CREATE, {"input": {
        "productId": gid("Product", product.id), "quantity": 1, "idempotencyKey": uuid.uuid4().hex}}))["createOrder"]
    order = created["order"]
    ws = await open_streams(stack, protocol, client.token, order["id"])
    try:
        # Another device signs out everywhere, then signs in again and pays: the order's
        # events (card keys) and the sign-in notification must not reach the old socket.
        other = make_client()
        await other.login(account["email"], account["password"])
        # The NEW_SIGNIN notification of that sign-in is still the old session's to see.
        note = await recv(ws, timeout=10)
        assert note["payload"]["data"]["notificationReceived"]["kind"] == "NEW_SIGNIN"
        ended = (await other.gql(LOGOUT, {"input": {"everywhere": True}}))["logout"]
        assert ended["errors"] == [] and ended["sessionsEnded"] == 2
        again = make_client()
        await again.login(account["email"], account["password"])
        paid = (await again.gql(PAY, {"input": {"orderId": order["id"], "method": "WALLET"}}))["payOrder"]
        assert paid["errors"] == []
        received, closed = await until_closed(ws, timeout=3.0)
        assert closed.rcvd is not None and closed.rcvd.code == 4403, closed
        assert closed.rcvd.reason.startswith("Forbidden")
        assert_nothing_personal(received)
    finally:
        await ws.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_logout_of_this_session_ends_its_socket(stack: Stack, client: Client, protocol: str) -> None:
    await client.register()
    ws = await connect(stack, protocol, client.token)
    try:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": start_type(protocol), "payload": {"query": NOTES}}))
        await asyncio.sleep(0.2)
        ended = (await client.gql(LOGOUT, {"input": {}}))["logout"]
        assert ended == {"errors": [], "sessionsEnded": 1}
        received, closed = await until_closed(ws, timeout=3.0)
        assert closed.rcvd is not None and closed.rcvd.code == 4403
        # Only the registration's WELCOME may still arrive: it is published after its job's
        # commit and can reach a subscription begun right after (as in test_subscriptions).
        late = [m for m in received if m.get("payload", {}).get("data", {}).get("notificationReceived", {}).get("kind") != "WELCOME"]
        assert late == []
    finally:
        await ws.close()


async def test_refresh_token_theft_ends_the_socket(stack: Stack, client: Client) -> None:
    """Reusing a rotated refresh token after the grace window revokes the session: its socket closes."""
    from kameng.settings import configure

    await client.register()
    first_refresh = client.refresh
    ws = await connect(stack, "graphql-transport-ws", client.token)
    before = get_settings()
    configure(before.model_copy(update={"refresh_reuse_grace_seconds": 0.3}))
    try:
        assert (await recv(ws))["type"] == "connection_ack"
        refresh = "mutation($input: RefreshTokenInput!) { refreshToken(input: $input) { errors { code } } }"
        assert (await client.gql(refresh, {"input": {"refreshToken": first_refresh}}, token=""))["refreshToken"]["errors"] == []
        await asyncio.sleep(0.5)
        replay = (await client.gql(refresh, {"input": {"refreshToken": first_refresh}}, token=""))["refreshToken"]
        assert replay["errors"] == [{"code": "UNAUTHENTICATED"}]
        _, closed = await until_closed(ws, timeout=3.0)
        assert closed.rcvd is not None and closed.rcvd.code == 4403
    finally:
        configure(before)
        await ws.close()


async def short_lived_token(user: User, seconds: int) -> tuple[str, AuthSession]:
    session = await AuthSession.create(
        id=uuid.uuid4(), user=user, refresh_hash=digest(new_refresh_secret()),
        expires_at=(await AuthSession.filter(user=user).first()).expires_at,  # type: ignore[union-attr]
    )
    claims = AccessClaims(user.id, session.id, user.role.value)
    return issue_access_token(get_settings().signing_secret(), claims, seconds), session


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_access_token_expiry_ends_the_socket(stack: Stack, client: Client, protocol: str) -> None:
    account = await client.register()
    user = await User.get(email=account["email"])
    token, _ = await short_lived_token(user, 2)
    ws = await connect(stack, protocol, token)
    try:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": start_type(protocol), "payload": {"query": NOTES}}))
        received, closed = await until_closed(ws, timeout=5.0)
        assert closed.rcvd is not None and closed.rcvd.code == 4403
        assert "expired" in closed.rcvd.reason
        assert received == []
    finally:
        await ws.close()


async def test_a_fresh_token_in_a_ping_keeps_the_socket(stack: Stack, client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    account = await client.register()
    user = await User.get(email=account["email"])
    token, _ = await short_lived_token(user, 2)
    ws = await connect(stack, "graphql-transport-ws", token)
    try:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": NOTES}}))
        await ws.send(json.dumps({"type": "ping", "payload": {"Authorization": f"Bearer {client.token}"}}))
        pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert pong == {"type": "pong", "payload": {"refreshed": True}}
        await asyncio.sleep(2.5)  # past the first token's expiry
        await make_client().login(account["email"], account["password"])
        note = await recv(ws, timeout=10)
        assert note["type"] == "next" and note["payload"]["data"]["notificationReceived"]["kind"] == "NEW_SIGNIN"
    finally:
        await ws.close()


async def test_a_token_of_someone_else_in_a_ping_closes_the_socket(stack: Stack, client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    await client.register()
    other = make_client()
    await other.register()
    ws = await connect(stack, "graphql-transport-ws", client.token)
    try:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "ping", "payload": {"Authorization": f"Bearer {other.token}"}}))
        received, closed = await until_closed(ws, timeout=3.0)
        assert closed.rcvd is not None and closed.rcvd.code == 4403 and received == []
    finally:
        await ws.close()
