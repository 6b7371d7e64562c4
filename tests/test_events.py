"""Behaviour events (issue 11 item 1): client batches through `track`, server events from the
outbox, device merge on sign-in, personalisation opt-out, and the retention sweep."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from strawberry.relay import GlobalID

from kameng.settings import get_settings
from models.accounts.users import User
from models.commerce.orders import Order
from models.discovery.events import BehaviourEvent, DailyEventAggregate, EventKind
from resolvers.accounts.auth import Actor
from resolvers.community import follows, posts
from resolvers.discovery import events as server_events
from resolvers.discovery import ingest
from resolvers.discovery.tracking import TrackedEvent, record
from resolvers.loyalty import checkins
from tests.conftest import Client, eventually
from tests.factories import make_product, make_user, token_for
from tests.test_points import pay_and_deliver, place_order

TRACK = """mutation($input: TrackInput!) { track(input: $input) { errors { code field message } accepted } }"""
OPT = """mutation($input: SetPersonalisationInput!) { setPersonalisation(input: $input) {
  errors { code } enabled } }"""


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def view(product_id: int, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"eventId": event_id or uuid.uuid4().hex, "kind": "PRODUCT_VIEW",
            "clientTime": datetime.now(UTC).isoformat(), "productId": gid("Product", product_id), **extra}


async def track(client: Client, events: list[dict[str, Any]], device: str | None = None) -> dict[str, Any]:
    data = await client.gql(TRACK, {"input": {"events": events, **({"deviceId": device} if device else {})}})
    return data["track"]


async def stored(event_ids: list[str], count: int | None = None) -> list[BehaviourEvent]:
    """Waits for the flusher (every half second) to have written the events."""
    want = len(event_ids) if count is None else count

    async def written() -> list[BehaviourEvent] | None:
        rows = await BehaviourEvent.filter(event_id__in=event_ids)
        return rows if len(rows) >= want else None

    return await eventually(written, timeout=10)


async def test_track_takes_500_events_in_one_request_and_ignores_repeats(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    client = make_client()
    device = f"dev-{uuid.uuid4().hex}"
    batch = [view(product.id) for _ in range(500)]
    assert await track(client, batch, device) == {"errors": [], "accepted": 500}
    ids = [e["eventId"] for e in batch]
    rows = await stored(ids)
    assert len(rows) == 500 and {r.device_id for r in rows} == {device} and {r.user_id for r in rows} == {None}
    assert {r.product_id for r in rows} == {product.id} and all(r.client_time is not None for r in rows)
    # The same batch again (a client retry), plus a repeat inside one batch: stored once.
    again = batch[:10] + [batch[0]] + [view(product.id, "fresh-" + uuid.uuid4().hex)]
    assert (await track(client, again, device))["accepted"] == 12
    await stored([again[-1]["eventId"]])
    assert await BehaviourEvent.filter(event_id__in=[*ids, again[-1]["eventId"]]).count() == 501
    # Concurrent retries of the same events from several requests: still once.
    same = [view(product.id) for _ in range(20)]
    await asyncio.gather(*(track(make_client(), same) for _ in range(4)))
    await stored([e["eventId"] for e in same])
    ingest_buffer = ingest.buffer()
    await ingest_buffer.flush()
    assert await BehaviourEvent.filter(event_id__in=[e["eventId"] for e in same]).count() == 20


async def test_bad_batches_are_refused_whole_with_the_item_named(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    client = make_client()
    good = view(product.id)
    cases = [
        ({**view(product.id), "kind": "ORDER_PAID"}, "events.1.kind"),
        ({**view(product.id), "eventId": "x"}, "events.1.eventId"),
        ({**view(product.id), "clientTime": (datetime.now(UTC) - timedelta(days=30)).isoformat()}, "events.1.clientTime"),
        ({"eventId": uuid.uuid4().hex, "kind": "SEARCH", "clientTime": datetime.now(UTC).isoformat()}, "events.1.query"),
        ({**view(product.id), "productId": gid("Post", 1)}, "events.1.productId"),
    ]
    for bad, field in cases:
        payload = await track(client, [good, bad])
        assert payload["accepted"] is None and [(e["code"], e["field"]) for e in payload["errors"]] == [
            ("INVALID_INPUT", field)], payload
    too_many = await track(client, [view(product.id) for _ in range(501)])
    assert [(e["code"], e["field"]) for e in too_many["errors"]] == [("INVALID_INPUT", "events")]
    assert (await track(client, [good], device="no"))["errors"][0]["field"] == "deviceId"
    await ingest.buffer().flush()
    assert not await BehaviourEvent.filter(event_id=good["eventId"]).exists()


async def test_a_device_over_its_budget_is_rate_limited(make_client, rt) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    device = f"dev-{uuid.uuid4().hex}"
    limit = int(rt.settings.track_limit_per_device.split("/")[0])
    sent = 0
    codes: set[str] = set()
    while sent <= limit:  # each request from a fresh address: only the device budget binds
        payload = await track(make_client(), [view(product.id) for _ in range(500)], device)
        codes |= {e["code"] for e in payload["errors"]}
        sent += 500
    assert codes == {"RATE_LIMITED"}


async def test_signing_in_merges_the_device_history(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    device = f"dev-{uuid.uuid4().hex}"
    guest = make_client()
    before = [view(product.id) for _ in range(3)]
    await track(guest, before, device)
    await stored([e["eventId"] for e in before])
    signed = make_client()
    await signed.register()
    after = [view(product.id)]
    await track(signed, after, device)
    user_id = int(GlobalID.from_id((await signed.gql("{ viewer { id } }"))["viewer"]["id"]).node_id)

    async def merged() -> bool:
        rows = await BehaviourEvent.filter(event_id__in=[e["eventId"] for e in before + after])
        return len(rows) == 4 and {r.user_id for r in rows} == {user_id}

    await eventually(merged, timeout=10)


async def test_server_events_are_written_once_from_the_outbox(rt) -> None:  # type: ignore[no-untyped-def]
    buyer = await make_user()
    product = await make_product(price="10.00", keys=3)
    order = await pay_and_deliver(buyer, await place_order(buyer, product))
    post = await posts.create_post(Actor(user=buyer), posts.NewPost(
        kind=posts.PostKind.GUIDE, title="A guide", body="How to top up", product_id=product.id))
    await follows.follow(Actor(user=buyer), "Product", product.id)
    await checkins.check_in(Actor(user=buyer))

    async def written() -> list[BehaviourEvent] | None:
        rows = await BehaviourEvent.filter(user_id=buyer.id)
        kinds = sorted(r.kind.value for r in rows)
        want = sorted(["ORDER_PAID", "ORDER_DELIVERED", "POST_CREATED", "FOLLOWED", "CHECKED_IN"])
        return rows if kinds == want else None

    rows = await eventually(written, timeout=15)
    paid = next(r for r in rows if r.kind == EventKind.ORDER_PAID)
    assert (paid.order_id, paid.product_id, paid.amount) == (order.id, product.id, (await Order.get(id=order.id)).total)
    assert next(r for r in rows if r.kind == EventKind.POST_CREATED).post_id == post.id
    # The relay sweeping again, and its rows handed over twice, writes nothing more.
    await rt.relay.drain()
    from models.outbox import OutboxEntry

    await server_events.record_from_outbox(await OutboxEntry.filter(published_at__not_isnull=True).order_by("-id").limit(500))
    assert await BehaviourEvent.filter(user_id=buyer.id).count() == 5


async def test_opting_out_unlinks_events_and_keeps_them_anonymous(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    user = await make_user()
    client = make_client()
    client.token = await token_for(user)
    device = f"dev-{uuid.uuid4().hex}"
    first = [view(product.id)]
    await track(client, first, device)
    await stored([e["eventId"] for e in first])
    assert (await client.gql(OPT, {"input": {"enabled": False}}))["setPersonalisation"] == {"errors": [], "enabled": False}
    assert (await User.get(id=user.id)).personalisation is False
    later = [view(product.id)]
    await track(client, later, device)
    await record([TrackedEvent(event_id=f"srv-{uuid.uuid4().hex}", kind=EventKind.CHECKED_IN, user_id=user.id)])
    rows = await stored([e["eventId"] for e in first + later])
    assert {(r.user_id, r.device_id, r.personalised) for r in rows} == {(None, None, False)}
    assert not await BehaviourEvent.filter(user_id=user.id).exists()
    assert (await make_client().post(OPT, {"input": {"enabled": True}})).json()["data"]["setPersonalisation"][
        "errors"][0]["code"] == "UNAUTHENTICATED"


async def test_retention_sweep_aggregates_then_deletes(rt) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    users = [await make_user() for _ in range(3)]
    old_day = date(2001, 2, 3)
    at = datetime(2001, 2, 3, 10, tzinfo=UTC)
    events = [TrackedEvent(event_id=f"old-{uuid.uuid4().hex}", kind=EventKind.PRODUCT_VIEW, user_id=u.id,
                           product_id=product.id, occurred_at=at + timedelta(minutes=i))
              for i, u in enumerate(users * 2)]
    events.append(TrackedEvent(event_id=f"old-{uuid.uuid4().hex}", kind=EventKind.PRODUCT_VIEW, device_id="anon-device-1",
                               product_id=product.id, occurred_at=at))
    recent = TrackedEvent(event_id=f"new-{uuid.uuid4().hex}", kind=EventKind.PRODUCT_VIEW, user_id=users[0].id,
                          product_id=product.id)
    await record([*events, recent])
    # A clock just past the retention period of the old day (the test stack keeps events a century).
    now = at + timedelta(days=get_settings().events_retention_days + 2)
    while await server_events.sweep_retention(now):
        pass
    aggregate = await DailyEventAggregate.get(day=old_day, kind=EventKind.PRODUCT_VIEW, product_id=product.id, post_id=0)
    assert (aggregate.events, aggregate.users, aggregate.devices) == (7, 3, 1)
    assert not await BehaviourEvent.filter(event_id__in=[e.event_id for e in events]).exists()
    assert await BehaviourEvent.filter(event_id=recent.event_id).exists()
