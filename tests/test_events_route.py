"""POST /events (service/web/events.py): the same behaviour-event batches as the GraphQL
`track`, decoded without GraphQL, with the same rules, errors, idempotency and identity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from models.discovery.events import BehaviourEvent
from resolvers.discovery import ingest
from tests.conftest import Client
from tests.factories import make_product, make_user, token_for
from tests.test_events import gid, stored, track, view


async def post_events(client: Client, body: Any, *, token: str | None = None) -> httpx.Response:
    headers = {"x-forwarded-for": client.ip}
    bearer = client.token if token is None else token
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    if isinstance(body, bytes):
        return await client.http.post("/events", content=body, headers={**headers, "content-type": "application/json"})
    return await client.http.post("/events", json=body, headers=headers)


async def test_a_500_event_batch_is_accepted_and_stored_once_across_both_doors(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    client = make_client()
    device = f"dev-{uuid.uuid4().hex}"
    batch = [view(product.id, surface="HOME") for _ in range(500)]
    answer = await post_events(client, {"deviceId": device, "events": batch})
    assert answer.status_code == 200 and answer.json() == {"accepted": 500}
    rows = await stored([e["eventId"] for e in batch])
    assert {r.device_id for r in rows} == {device} and {r.user_id for r in rows} == {None}
    assert {r.product_id for r in rows} == {product.id} and {r.surface for r in rows} == {"HOME"}
    # The same events again through the GraphQL door: accepted, stored once.
    assert (await track(client, batch[:20], device))["accepted"] == 20
    await ingest.buffer().flush()
    assert await BehaviourEvent.filter(event_id__in=[e["eventId"] for e in batch]).count() == 500

    # Signed in: the events are the user's, and the device's history merges into them.
    user = await make_user()
    signed = make_client()
    signed.token = await token_for(user)
    mine = [view(product.id)]
    assert (await post_events(signed, {"deviceId": device, "events": mine})).json() == {"accepted": 1}
    await stored([mine[0]["eventId"]])
    await ingest.buffer().flush()
    assert await BehaviourEvent.filter(event_id=mine[0]["eventId"], user_id=user.id).exists()
    assert await BehaviourEvent.filter(device_id=device, user_id=user.id).count() == 501


async def test_bad_batches_get_the_same_errors_as_track_and_change_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    client = make_client()
    good = view(product.id)
    cases = [
        {**view(product.id), "kind": "ORDER_PAID"},
        {**view(product.id), "eventId": "x"},
        {**view(product.id), "clientTime": (datetime.now(UTC) - timedelta(days=30)).isoformat()},
        {"eventId": uuid.uuid4().hex, "kind": "SEARCH", "clientTime": datetime.now(UTC).isoformat()},
        {**view(product.id), "productId": gid("Post", 1)},
    ]
    for bad in cases:
        through_graphql = await track(client, [good, bad])
        answer = await post_events(client, {"events": [good, bad]})
        assert answer.status_code == 400
        assert [(e["code"], e["field"]) for e in answer.json()["errors"]] == [
            (e["code"], e["field"]) for e in through_graphql["errors"]], (bad, answer.json())
    # What GraphQL's own type checks refuse, the route refuses with the field named.
    shapes = [
        ({"events": [good, {**good, "eventId": 12}]}, "events.1.eventId"),
        ({"events": [good, {**good, "clientTime": "yesterday"}]}, "events.1.clientTime"),
        ({"events": [good, {**good, "colour": "red"}]}, "events.1.colour"),
        ({"events": [good, "x"]}, "events.1"),
        ({"events": "all"}, "events"),
        ({"events": [view(product.id) for _ in range(501)]}, "events"),
        ({"events": [good], "deviceId": "no"}, "deviceId"),
        ([good], "input"),
    ]
    for body, field in shapes:
        answer = await post_events(client, body)
        assert answer.status_code == 400 and [(e["code"], e["field"]) for e in answer.json()["errors"]] == [
            ("INVALID_INPUT", field)], (body, answer.json())
    assert (await post_events(client, b"{not json")).status_code == 415
    assert (await post_events(client, {"events": [good]}, token="not-a-token")).status_code == 401
    await ingest.buffer().flush()
    assert not await BehaviourEvent.filter(event_id=good["eventId"]).exists()
