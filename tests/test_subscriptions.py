"""Subscriptions over WebSocket: both protocols, auth in connection_init, resume."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from strawberry.relay import GlobalID

from tests.conftest import Client, Stack

SUBSCRIBE = "subscription($after: ID) { notificationReceived(after: $after) { id kind title } }"
MARK_READ = "mutation($input: MarkNotificationsReadInput!) { markNotificationsRead(input: $input) { errors { code field } marked unreadCount } }"


async def recv(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] not in ("ka", "ping", "pong"):
            return message


async def connect(stack: Stack, protocol: str, token: str | None) -> Any:
    ws = await websockets.connect(stack.ws_url, subprotocols=[protocol])
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    return ws


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_notification_arrives_end_to_end(stack: Stack, client: Client, make_client, protocol: str) -> None:  # type: ignore[no-untyped-def]
    account = await client.register()
    async with await connect(stack, protocol, client.token) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": SUBSCRIBE}}))
        # A sign-in from another device: a job (through the outbox and the broker) notifies.
        await asyncio.sleep(0.2)
        await make_client().login(account["email"], account["password"])
        # The WELCOME of the registration may still be on its way (it is published after its
        # commit, possibly after this subscription began): it may come first, nothing else.
        kinds = []
        while "NEW_SIGNIN" not in kinds and len(kinds) < 2:
            message = await recv(ws)
            assert message["type"] == ("next" if protocol == "graphql-transport-ws" else "data"), message
            kinds.append(message["payload"]["data"]["notificationReceived"]["kind"])
        assert kinds in (["NEW_SIGNIN"], ["WELCOME", "NEW_SIGNIN"]), kinds


async def test_bad_token_in_connection_init_is_refused(stack: Stack) -> None:
    async with await connect(stack, "graphql-transport-ws", "forged.token.value") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd.code == 4403


async def test_anonymous_subscriber_gets_unauthenticated(stack: Stack) -> None:
    async with await connect(stack, "graphql-transport-ws", None) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        message = await recv(ws)
        assert message["type"] in ("error", "next"), message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_resume_after_reconnect_receives_what_was_missed(stack: Stack, client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    account = await client.register()
    # The welcome notification exists; take it as the last one seen.
    data = await client.gql("{ viewer { notifications(first: 1) { edges { node { id kind } } } } }")
    last_seen = data["viewer"]["notifications"]["edges"][0]["node"]["id"]
    # While disconnected: two more sign-ins.
    for _ in range(2):
        await make_client().login(account["email"], account["password"])

    async def signins() -> int:
        d = await client.gql("{ viewer { unreadNotificationCount } }")
        return d["viewer"]["unreadNotificationCount"] >= 3

    from tests.conftest import eventually

    await eventually(signins)
    async with await connect(stack, "graphql-transport-ws", client.token) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE, "variables": {"after": last_seen}}}))
        missed = [(await recv(ws))["payload"]["data"]["notificationReceived"] for _ in range(2)]
        assert [n["kind"] for n in missed] == ["NEW_SIGNIN", "NEW_SIGNIN"]
        ids = [int(GlobalID.from_id(n["id"]).node_id) for n in missed]
        assert ids == sorted(ids) and ids[0] > int(GlobalID.from_id(last_seen).node_id)
        # And then live ones, without duplicates.
        await make_client().login(account["email"], account["password"])
        live = (await recv(ws))["payload"]["data"]["notificationReceived"]
        assert int(GlobalID.from_id(live["id"]).node_id) > ids[-1]


async def test_other_users_notifications_are_not_delivered(stack: Stack, client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    await client.register()
    other = make_client()
    other_account = await other.register()
    async with await connect(stack, "graphql-transport-ws", client.token) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
        await asyncio.sleep(0.2)
        await make_client().login(other_account["email"], other_account["password"])
        with pytest.raises(TimeoutError):
            await recv(ws, timeout=1.0)


async def test_mark_read(client: Client) -> None:
    await client.register()
    data = await client.gql("{ viewer { unreadNotificationCount notifications(first: 5) { edges { node { id } } } } }")
    assert data["viewer"]["unreadNotificationCount"] == 1
    note_id = data["viewer"]["notifications"]["edges"][0]["node"]["id"]
    payload = (await client.gql(MARK_READ, {"input": {"ids": [note_id]}}))["markNotificationsRead"]
    assert payload == {"errors": [], "marked": 1, "unreadCount": 0}
    bad = (await client.gql(MARK_READ, {"input": {"ids": ["VXNlcjox"]}}))["markNotificationsRead"]
    assert bad["errors"] == [{"code": "INVALID_INPUT", "field": "ids"}]
