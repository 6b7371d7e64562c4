"""Profiles built in bulk (the RFM sweep, the churn scores, the trained HOME lists and their Redis
copy) against the erasure of an account deletion or an opt-out: a batch that read its buyers before
the erasure writes nothing for them after it, an erasure waits for a batch that is writing, and the
HOME list leaves Redis with the table's row (before, an opted-out user was still served it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from strawberry.relay import GlobalID
from tortoise.transactions import in_transaction

from kameng import runtime
from kameng.settings import get_settings
from models.accounts.users import User
from models.commerce.orders import Order, OrderStatus
from models.discovery.events import BehaviourEvent, EventKind
from models.discovery.recommendations import RecommendationList
from models.outbox import OutboxEntry, OutboxKind
from models.lifecycle.churn import ChurnScore
from models.lifecycle.segments import BuyerRfm
from resolvers.accounts import profiling
from resolvers.commerce.orders import new_order_no
from resolvers.discovery import events as server_events
from resolvers.discovery import ingest, storage, tracking
from resolvers.discovery.tracking import TrackedEvent
from resolvers.lifecycle import churn, rfm
from subscriptions import outbox
from tests.conftest import Client, eventually
from tests.factories import make_product, make_user

DELETE = """mutation($input: DeleteMyAccountInput!) { deleteMyAccount(input: $input) { errors { code } deleted } }"""
OPT_OUT = """mutation { setPersonalisation(input: {enabled: false}) { errors { code } enabled } }"""
SEARCH = """query($q: String!, $device: String) { search(query: $q, deviceId: $device) { edges { cursor } } }"""


async def buyer(make_client) -> tuple[Client, User, str]:  # type: ignore[no-untyped-def]
    """A signed-in buyer with two completed orders (a profile's worth)."""
    client: Client = make_client()
    me = await client.register(nickname="Profiled")
    user = await User.get(id=int(GlobalID.from_id(me["user"]["id"]).node_id))
    product = await make_product(price="5.00")
    for days in (40, 3):
        at = datetime.now(UTC) - timedelta(days=days)
        await Order.create(order_no=new_order_no(), buyer=user, product=product, merchant_id=product.merchant_id,
                           quantity=1, unit_price=Decimal("5.00"), total=Decimal("5.00"),
                           status=OrderStatus.COMPLETED, idempotency_scope=f"u:{user.id}",
                           idempotency_key=uuid.uuid4().hex, expires_at=at, paid_at=at)
    return client, user, me["password"]


async def delete(client: Client, password: str) -> None:
    done = (await client.gql(DELETE, {"input": {"password": password}}))["deleteMyAccount"]
    assert done == {"errors": [], "deleted": True}, done


async def opt_out(client: Client, _password: str) -> None:
    assert (await client.gql(OPT_OUT))["setPersonalisation"] == {"errors": [], "enabled": False}


async def opting_out(user_id: int, begun: asyncio.Event, finish: asyncio.Event) -> None:
    """tracking.set_personalisation(enabled=False), held open from ``begun`` until ``finish``."""
    async with outbox.atomic():
        await User.filter(id=user_id).update(personalisation=False)
        await profiling.erasing()
        await BehaviourEvent.filter(user_id=user_id).update(user_id=None, device_id=None, personalised=False)
        begun.set()
        await finish.wait()


async def waits(waiting: asyncio.Task[None], holder: asyncio.Task[None], finish: asyncio.Event, message: str) -> None:
    """``waiting`` has not ended 0.3 s on; then ``finish`` lets ``holder`` end, and ``waiting`` after it."""
    try:
        await asyncio.sleep(0.3)
        assert not waiting.done(), message
    finally:
        finish.set()
        await holder
        await waiting


async def does_not_wait(task: asyncio.Task[Any], holder: asyncio.Task[None], finish: asyncio.Event,
                        message: str) -> None:
    """``task`` ends within 2 s while ``holder`` holds on; then ``finish`` lets ``holder`` end."""
    try:
        await asyncio.wait([task], timeout=2)
        assert task.done(), message
    finally:
        finish.set()
        await holder
        await task


async def stored_anonymous(event_id: str) -> bool:
    stored = await BehaviourEvent.get(event_id=event_id)
    return (stored.user_id, stored.device_id, stored.personalised) == (None, None, False)


async def redis_copy(owner: str) -> bytes | None:
    redis = runtime.redis() if runtime.is_started() else None
    return None if redis is None else await redis.get(storage._key(owner))


async def publish(lists: dict[str, list[list[object]]]) -> None:
    now = datetime.now(UTC)
    await storage.publish(f"test-{uuid.uuid4().hex[:6]}", lists, {}, {"interactions": 1.0}, now)


@pytest.mark.parametrize("erase", [delete, opt_out], ids=["deletion", "opt-out"])
async def test_a_batch_that_read_its_buyers_before_an_erasure_writes_none_of_theirs(
        make_client, monkeypatch, erase: Callable[[Client, str], Awaitable[None]]) -> None:  # type: ignore[no-untyped-def]
    """The sweep, the churn scoring and the training read their buyers, compute, then write: an
    erasure that commits in between found no profile to erase, so the write must leave the user out."""
    client, user, password = await buyer(make_client)
    _, stayer, _ = await buyer(make_client)
    read_before = await rfm.purchases()  # what a batch that began before the erasure has read
    assert {user.id, stayer.id} <= set(read_before)
    await erase(client, password)

    async def stale(user_ids: list[int] | None = None) -> dict[int, list[tuple[datetime, Decimal]]]:
        return read_before if user_ids is None else {u: read_before[u] for u in user_ids if u in read_before}

    monkeypatch.setattr(rfm, "purchases", stale)
    await rfm.recompute_all()
    await churn.score_all(None)
    await publish({f"u:{user.id}": [[1, 1.0]], f"u:{stayer.id}": [[1, 1.0]], "trending": [[1, 1.0]]})
    assert not await BuyerRfm.filter(user_id=user.id).exists()
    assert not await ChurnScore.filter(user_id=user.id).exists()
    assert await storage.fetch([f"u:{user.id}"]) == {}
    assert await redis_copy(f"u:{user.id}") is None
    # The others are written as before.
    assert await BuyerRfm.filter(user_id=stayer.id).exists() and await ChurnScore.filter(user_id=stayer.id).exists()
    assert set(await storage.fetch([f"u:{stayer.id}", "trending"])) == {f"u:{stayer.id}", "trending"}


@pytest.mark.parametrize("erase", [delete, opt_out], ids=["deletion", "opt-out"])
async def test_the_home_list_leaves_redis_with_its_row(
        make_client, erase: Callable[[Client, str], Awaitable[None]]) -> None:  # type: ignore[no-untyped-def]
    """Serving reads the Redis copy first: before, an opted-out user was still served the list built
    from their data (and a deleted one's stayed there) until the copy expired, hours later."""
    client, user, password = await buyer(make_client)
    await publish({f"u:{user.id}": [[1, 1.0]], "trending": [[1, 1.0]]})
    assert set(await storage.fetch([f"u:{user.id}", "trending"])) == {f"u:{user.id}", "trending"}
    await erase(client, password)
    assert not await RecommendationList.filter(owner=f"u:{user.id}").exists()
    assert await redis_copy(f"u:{user.id}") is None
    assert set(await storage.fetch([f"u:{user.id}", "trending"])) == {"trending"}


async def test_an_erasure_waits_for_a_batch_that_is_writing(make_client) -> None:  # type: ignore[no-untyped-def]
    """A batch writes inside profiling.writing(), an erasure inside profiling.erasing(): the erasure
    begins only when the batch has committed, so it erases what the batch wrote."""
    client, user, password = await buyer(make_client)
    writing, finish = asyncio.Event(), asyncio.Event()

    async def batch() -> None:
        async with outbox.atomic():
            await profiling.writing()
            assert user.id in await profiling.profiled([user.id])
            await BuyerRfm.filter(user_id=user.id).delete()
            await rfm.NEW_RFM.run([BuyerRfm(user_id=user.id, recency_days=3, frequency=2, monetary=Decimal("10.00"),
                                            r_score=3, f_score=3, m_score=3, first_purchase_at=datetime.now(UTC),
                                            last_purchase_at=datetime.now(UTC), stage="ACTIVE",
                                            computed_at=datetime.now(UTC))])
            writing.set()
            await finish.wait()

    writer = asyncio.create_task(batch())
    await writing.wait()
    eraser = asyncio.create_task(delete(client, password))
    await asyncio.sleep(0.3)
    assert not eraser.done(), "the erasure went on while a batch was writing profiles"
    finish.set()
    await writer
    await eraser
    assert not await BuyerRfm.filter(user_id=user.id).exists()


async def test_buffered_events_flushed_during_an_opt_out_are_unlinked(stack) -> None:  # type: ignore[no-untyped-def]
    """Client events reach the table a flush after they were sent: a flush that overlaps an opt-out
    (or a deletion) waits for it and stores them anonymous, and a buffered sign-in merge no longer
    links a device's events to an account that has gone."""
    user = await make_user()
    device = f"dev-{uuid.uuid4().hex[:10]}"
    begun, finish = asyncio.Event(), asyncio.Event()

    eraser = asyncio.create_task(opting_out(user.id, begun, finish))
    await begun.wait()
    sent = TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.PRODUCT_VIEW, user_id=user.id, device_id=device)
    flusher = asyncio.create_task(tracking.write_rows([tracking.as_row(sent)]))
    await waits(flusher, eraser, finish, "the flush went on while the opt-out was erasing")
    assert await stored_anonymous(sent.event_id)

    gone = await make_user()
    await BehaviourEvent.create(event_id=uuid.uuid4().hex, kind=EventKind.PAGE_VISIT, device_id=device,
                                occurred_at=datetime.now(UTC))
    await User.filter(id=gone.id).update(is_active=False, personalisation=False)  # as deletion leaves it
    assert await tracking.merge_device(gone.id, device) == 0
    assert not await BehaviourEvent.filter(user_id=gone.id).exists()
    assert await tracking.merge_device(user.id, device) == 0  # opted out
    kept = await make_user()
    assert await tracking.merge_device(kept.id, device) == 1


async def test_a_server_event_written_during_an_erasure_is_stored_anonymous(stack) -> None:  # type: ignore[no-untyped-def]
    """Events written at once (the relay's ORDER_PAID, ORDER_DELIVERED...) read the user's choice
    under profiling's lock: one written while an opt-out or a deletion is erasing waits for it, then
    stores the event anonymous (before, it read the choice as it was and stored the event linked)."""
    user = await make_user()
    begun, finish = asyncio.Event(), asyncio.Event()

    eraser = asyncio.create_task(opting_out(user.id, begun, finish))
    await begun.wait()
    searched = TrackedEvent(event_id=f"search:{uuid.uuid4().hex}", kind=EventKind.SEARCH, query="steam",
                            user_id=user.id, device_id=f"dev-{uuid.uuid4().hex[:10]}")
    writer = asyncio.create_task(tracking.record([searched]))
    await waits(writer, eraser, finish, "the event was written while the opt-out was erasing")
    assert await stored_anonymous(searched.event_id)


@pytest.mark.parametrize("erase", [delete, opt_out], ids=["deletion", "opt-out"])
async def test_an_erasure_waits_for_a_server_event_being_written(
        make_client, erase: Callable[[Client, str], Awaitable[None]]) -> None:  # type: ignore[no-untyped-def]
    """The relay writes server events in its own transaction (record(join=True, wait=False)): an erasure that
    begins meanwhile waits for it to commit, then unlinks the event with the rest (before, it went
    on, found nothing yet, and the event committed after it, linked to the user and device)."""
    client, user, password = await buyer(make_client)
    written, finish = asyncio.Event(), asyncio.Event()
    delivered = TrackedEvent(event_id=f"order:{uuid.uuid4().hex}", kind=EventKind.ORDER_DELIVERED,
                             user_id=user.id, device_id=f"dev-{uuid.uuid4().hex[:10]}")

    async def relaying() -> None:
        async with in_transaction():
            assert await tracking.record([delivered], join=True, wait=False)  # as the relay writes them
            written.set()
            await finish.wait()

    writer = asyncio.create_task(relaying())
    await written.wait()
    eraser = asyncio.create_task(erase(client, password))
    await waits(eraser, writer, finish, "the erasure went on while a server event of the user was being written")
    assert await stored_anonymous(delivered.event_id)


async def test_the_relay_does_not_wait_for_an_erasure(stack) -> None:  # type: ignore[no-untyped-def]
    """The relay has one publisher per process: waiting there for an erasure (which may itself wait
    for a long batch write) would hold every later event and job of the process. While an erasure
    holds the lock, the relay's server events go to the buffered writer, whose flush waits for the
    erasure and then stores the erased user's events anonymous and the others' as they are."""
    if get_settings().is_sqlite:
        pytest.skip("SQLite runs one transaction at a time: the relay's transaction waits for any other")
    user, other = await make_user(), await make_user()
    begun, finish = asyncio.Event(), asyncio.Event()
    eraser = asyncio.create_task(opting_out(user.id, begun, finish))
    await begun.wait()
    rows = [OutboxEntry(kind=OutboxKind.TRACK, topic=EventKind.FOLLOWED.value, created_at=datetime.now(UTC),
                        payload={"event_id": f"follow:{uuid.uuid4().hex}", "user_id": u.id}) for u in (user, other)]

    async def relaying() -> None:  # the relay's transaction, which sends and stamps the rows
        async with in_transaction():
            await server_events.record_from_outbox(rows)

    await does_not_wait(asyncio.create_task(relaying()), eraser, finish, "the relay waited for the erasure")
    await ingest.buffer().flush()
    assert await stored_anonymous(rows[0].payload["event_id"])
    assert (await BehaviourEvent.get(event_id=rows[1].payload["event_id"])).user_id == other.id


async def test_a_search_answers_during_an_erasure_and_its_event_is_stored_anonymous(  # type: ignore[no-untyped-def]
        make_client) -> None:
    """A search is a read: its SEARCH event goes to the buffered writer with the client's events, so a
    signed-in search answers while an opt-out holds the profiles' lock (before, it wrote the event at
    once and waited for the erasure), and the flush, which waits for the erasure, stores it anonymous."""
    if get_settings().is_sqlite:
        pytest.skip("SQLite runs one transaction at a time: any statement of the search waits for the opt-out's")
    client, user, _ = await buyer(make_client)
    word, device = "zq" + uuid.uuid4().hex[:8], f"dev-{uuid.uuid4().hex[:10]}"
    begun, finish = asyncio.Event(), asyncio.Event()
    eraser = asyncio.create_task(opting_out(user.id, begun, finish))
    await begun.wait()
    searching = asyncio.create_task(client.gql(SEARCH, {"q": word, "device": device}))
    await does_not_wait(searching, eraser, finish, "the search waited for the erasure")
    assert searching.result()["search"]["edges"] == []
    await ingest.buffer().flush()

    async def stored() -> BehaviourEvent | None:
        return await BehaviourEvent.filter(kind=EventKind.SEARCH, query=word).first()

    event = await eventually(stored)
    assert (event.user_id, event.device_id, event.personalised) == (None, None, False)
