"""The transactional outbox through the running stack: rows written in `atomic()` reach the
bus after commit, rolled-back ones never do, order is kept and crashed leftovers are swept."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kameng.runtime import Runtime
from models.outbox import OutboxEntry, OutboxKind
from subscriptions import jobs, outbox
from subscriptions.bus import Event
from tests.conftest import eventually

RECEIVE_TIMEOUT = 5.0


class Boom(Exception):
    pass


def new_topic() -> str:
    return f"test:outbox:{uuid.uuid4().hex}"


@contextlib.asynccontextmanager
async def listening(rt: Runtime, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
    async with rt.bus.subscribe(topic) as subscription:
        events = aiter(subscription)
        try:
            yield events
        finally:
            await events.aclose()  # type: ignore[attr-defined]


async def take(events: AsyncIterator[Event], count: int) -> list[Event]:
    async def collect() -> list[Event]:
        return [await anext(events) for _ in range(count)]

    return await asyncio.wait_for(collect(), RECEIVE_TIMEOUT)


def payloads(events: list[Event]) -> list[Any]:
    return [event.data["n"] for event in events]


async def published(*ids: int) -> bool:
    return await OutboxEntry.filter(id__in=list(ids), published_at__isnull=False).count() == len(ids)


async def sweeps(rt: Runtime, count: int = 3) -> None:
    """Give the relay time for a few periodic sweeps (nothing is asserted on timing)."""
    await asyncio.sleep(rt.settings.outbox_sweep_seconds * count)


async def test_rows_written_in_atomic_are_published_after_commit(rt: Runtime) -> None:
    topic = new_topic()
    async with listening(rt, topic) as events:
        async with outbox.atomic():
            entry = await outbox.emit(topic, {"n": 1, "what": "created"})
            assert entry.published_at is None
        (event,) = await take(events, 1)
    assert event.topic == topic
    assert event.data == {"n": 1, "what": "created", "_outbox": entry.id}
    await eventually(lambda: published(entry.id))
    row = await OutboxEntry.get(id=entry.id)
    assert row.kind == OutboxKind.EVENT and row.topic == topic and row.payload == {"n": 1, "what": "created"}


async def test_nothing_is_published_before_commit(rt: Runtime) -> None:
    topic = new_topic()
    async with listening(rt, topic) as events:
        pending = asyncio.ensure_future(anext(events))
        try:
            async with outbox.atomic():
                entry = await outbox.emit(topic, {"n": "inside"})
                rt.relay.kick()  # even a woken relay must not see an uncommitted row
                await sweeps(rt, 2)
                assert not pending.done()
            event = await asyncio.wait_for(pending, RECEIVE_TIMEOUT)
        finally:
            pending.cancel()
    assert event.data == {"n": "inside", "_outbox": entry.id}


async def test_a_rolled_back_transaction_publishes_nothing(rt: Runtime) -> None:
    topic = new_topic()
    async with listening(rt, topic) as events:
        with pytest.raises(Boom):
            async with outbox.atomic():
                await outbox.emit(topic, {"n": "doomed"})
                raise Boom
        assert not await OutboxEntry.filter(topic=topic).exists()
        await sweeps(rt)
        async with outbox.atomic():
            sentinel = await outbox.emit(topic, {"n": "sentinel"})
        (first,) = await take(events, 1)
    # Events of a topic arrive in the order written: had the doomed row gone out, it would
    # have arrived first.
    assert first.data == {"n": "sentinel", "_outbox": sentinel.id}
    assert await OutboxEntry.filter(topic=topic).count() == 1


async def test_emit_outside_atomic_raises(rt: Runtime) -> None:
    topic = new_topic()
    with pytest.raises(RuntimeError, match="atomic"):
        await outbox.emit(topic, {"n": 1})
    with pytest.raises(RuntimeError, match="atomic"):
        await outbox.enqueue(jobs.notify_new_signin(str(uuid.uuid4())))
    assert not await OutboxEntry.filter(topic=topic).exists()


async def test_events_of_a_topic_are_published_in_the_order_written(rt: Runtime) -> None:
    topic = new_topic()
    async with listening(rt, topic) as events:
        async with outbox.atomic():
            for n in range(50):
                await outbox.emit(topic, {"n": n})
        for n in range(50, 100):
            async with outbox.atomic():
                await outbox.emit(topic, {"n": n})
        got = await take(events, 100)
    assert payloads(got) == list(range(100))
    outbox_ids = [event.data["_outbox"] for event in got]
    assert outbox_ids == sorted(outbox_ids) and len(set(outbox_ids)) == 100
    await eventually(lambda: published(*outbox_ids))


async def test_pending_rows_of_a_crashed_process_are_swept(rt: Runtime) -> None:
    topic = new_topic()
    async with listening(rt, topic) as events:
        # Written as if committed by a process that died before its relay ran: no kick.
        rows = [
            await OutboxEntry.create(kind=OutboxKind.EVENT, topic=topic, payload={"n": n}, published_at=None)
            for n in range(3)
        ]
        got = await take(events, 3)
    assert payloads(got) == [0, 1, 2]
    assert [event.data["_outbox"] for event in got] == [row.id for row in rows]
    await eventually(lambda: published(*(row.id for row in rows)))


async def test_nested_atomic_joins_the_outer_transaction(rt: Runtime) -> None:
    topic = new_topic()
    async with listening(rt, topic) as events:
        with pytest.raises(Boom):
            async with outbox.atomic():
                await outbox.emit(topic, {"n": "outer"})
                async with outbox.atomic():
                    await outbox.emit(topic, {"n": "inner"})
                raise Boom  # after the inner block completed: it goes too
        assert not await OutboxEntry.filter(topic=topic).exists()

        # Committed together: both go out, in order, once the outer block commits.
        async with outbox.atomic():
            outer = await outbox.emit(topic, {"n": "outer ok"})
            async with outbox.atomic():
                inner = await outbox.emit(topic, {"n": "inner ok"})
        got = await take(events, 2)
    assert payloads(got) == ["outer ok", "inner ok"]
    assert [e.data["_outbox"] for e in got] == [outer.id, inner.id]
    assert await OutboxEntry.filter(topic=topic).count() == 2


async def test_an_inner_failure_caught_by_the_outer_block_keeps_the_outer_rows(rt: Runtime) -> None:
    topic = new_topic()
    async with listening(rt, topic) as events:
        async with outbox.atomic():
            kept = await outbox.emit(topic, {"n": "kept"})
            with pytest.raises(Boom):
                async with outbox.atomic():
                    await outbox.emit(topic, {"n": "undone"})
                    raise Boom
            last = await outbox.emit(topic, {"n": "last"})
        got = await take(events, 2)
    assert payloads(got) == ["kept", "last"]
    assert [e.data["_outbox"] for e in got] == [kept.id, last.id]
    assert sorted(await OutboxEntry.filter(topic=topic).values_list("id", flat=True)) == [kept.id, last.id]


async def test_a_joining_block_is_the_outer_transaction_itself(rt: Runtime) -> None:
    """``atomic(join=True)`` sets no savepoint: inside another block, what it wrote stands or
    falls with that block; on its own it is a transaction of its own."""
    topic = new_topic()
    with pytest.raises(Boom):
        async with outbox.atomic():
            async with outbox.atomic(join=True):
                await outbox.emit(topic, {"n": "joined"})
            raise Boom
    assert not await OutboxEntry.filter(topic=topic).exists()
    async with listening(rt, topic) as events:
        async with outbox.atomic(join=True):
            alone = await outbox.emit(topic, {"n": "alone"})
        got = await take(events, 1)
    assert payloads(got) == ["alone"] and got[0].data["_outbox"] == alone.id


async def test_rows_are_written_at_commit_and_a_bare_savepoint_inside_atomic_is_refused(rt: Runtime) -> None:
    """The rows of a block are written together just before it commits (ids in the order
    written); a bare nested in_transaction() could not forget its rows on rollback, so the
    tests' guard (tests/conftest.py) refuses it wherever a test reaches one."""
    from tortoise.transactions import in_transaction

    from tests import conftest

    topic = new_topic()
    async with outbox.atomic():
        first = await outbox.emit(topic, {"n": 1})
        second = await outbox.emit(topic, {"n": 2})
        assert first.id is None and not await OutboxEntry.filter(topic=topic).exists()
    assert first.id is not None and second.id is not None and first.id < second.id
    assert await OutboxEntry.filter(topic=topic).order_by("id").values_list("payload", flat=True) == [{"n": 1}, {"n": 2}]
    with pytest.raises(AssertionError, match="nested outbox.atomic"):
        async with outbox.atomic():
            async with in_transaction():
                await outbox.emit(topic, {"n": "never"})
    assert conftest._bare_savepoints
    conftest._bare_savepoints.clear()
    assert await OutboxEntry.filter(topic=topic).count() == 2


async def test_rows_handed_over_for_the_commit_are_written_with_it_and_forgotten_with_a_savepoint(rt: Runtime) -> None:
    """``insert_at_commit`` and ``add_at_commit``: another table's rows go in with the outbox's,
    their ids set at the commit, and counters move then; a nested block that rolls back forgets
    its own, as it forgets outbox entries; outside a block there is no commit to write them with."""
    from models.accounts.notifications import Notification
    from models.commerce.catalog import SOLD_COUNT, Product
    from models.statements import Insert
    from tests.factories import make_product, make_users

    (user,) = await make_users(1)
    statement, topic = Insert(Notification), new_topic()

    def note(title: str) -> Notification:
        return Notification(user_id=user.id, kind="TEST", title=title, body="", data={})

    product = await make_product(price="1.00")
    kept, undone, last = note("kept"), note("undone"), note("last")
    async with outbox.atomic():
        outbox.insert_at_commit(statement, kept)
        outbox.add_at_commit(SOLD_COUNT, product.id, 1)
        await outbox.emit(topic, {"n": "kept"})
        with pytest.raises(Boom):
            async with outbox.atomic():
                outbox.insert_at_commit(statement, undone)
                outbox.add_at_commit(SOLD_COUNT, product.id, 10)
                raise Boom
        outbox.insert_at_commit(statement, last)
        outbox.add_at_commit(SOLD_COUNT, product.id, 2)
        assert kept.id is None and not await Notification.filter(user_id=user.id).exists()
        assert (await Product.get(id=product.id)).sold_count == 0
    assert kept.id is not None and last.id is not None and kept.id < last.id and undone.id is None
    stored = await Notification.filter(user_id=user.id).order_by("id").values_list("id", "title")
    assert stored == [(kept.id, "kept"), (last.id, "last")]
    assert (await Product.get(id=product.id)).sold_count == 3
    with pytest.raises(RuntimeError, match="outbox.atomic"):
        outbox.insert_at_commit(statement, note("nowhere"))
    with pytest.raises(RuntimeError, match="outbox.atomic"):
        outbox.add_at_commit(SOLD_COUNT, product.id, 1)
    with pytest.raises(Boom):
        async with outbox.atomic():
            outbox.insert_at_commit(statement, note("rolled back"))
            raise Boom
    assert await Notification.filter(user_id=user.id).count() == 2
