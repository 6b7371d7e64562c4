"""Delivery right after commit (issue 15 item 3): the committing process publishes its own
outbox rows, the sweep only takes what was left, relays sweeping at once never send a row
twice, and a send that fails leaves the row for the sweep."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from kameng.runtime import Runtime
from models.outbox import OutboxEntry, OutboxKind
from subscriptions import jobs, outbox
from tests.conftest import eventually
from tests.test_outbox import listening, payloads, published, take
from workers.relay import OutboxRelay


def new_topic() -> str:
    return f"test:delivery:{uuid.uuid4().hex}"


async def test_committed_rows_leave_from_the_committing_process_without_a_sweep(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    swept: list[float] = []

    async def no_sweep(grace: float) -> int:
        swept.append(grace)
        return 0

    monkeypatch.setattr(rt.relay, "sweep", no_sweep)  # only the after-commit path is left
    topic = new_topic()
    async with listening(rt, topic) as events:
        async with outbox.atomic():
            first = await outbox.emit(topic, {"n": 1})
            job = await outbox.enqueue(jobs.notify_new_signin(str(uuid.uuid4())))
            second = await outbox.emit(topic, {"n": 2})
        got = await take(events, 2)
    assert payloads(got) == [1, 2]
    assert [event.data["_outbox"] for event in got] == [first.id, second.id]
    await eventually(lambda: published(first.id, job.id, second.id))


async def test_concurrent_commits_are_each_published_once_in_order(rt: Runtime) -> None:
    topic = new_topic()

    async def commit(n: int) -> int:
        async with outbox.atomic():
            entry = await outbox.emit(topic, {"n": n})
        return entry.id  # written (and numbered) as the block commits

    async with listening(rt, topic) as events:
        ids = await asyncio.gather(*(commit(n) for n in range(60)))
        async with outbox.atomic():
            sentinel = await outbox.emit(topic, {"n": "sentinel"})
        got = await take(events, 61)
    assert got[-1].data["_outbox"] == sentinel.id
    sent = [event.data["_outbox"] for event in got[:-1]]
    assert sorted(sent) == sorted(ids) and len(set(sent)) == 60
    await eventually(lambda: published(*ids, sentinel.id))


async def test_relays_sweeping_at_once_send_every_left_row_exactly_once(rt: Runtime) -> None:
    topics = [new_topic() for _ in range(4)]
    others = [OutboxRelay(rt.settings, rt.bus, rt.broker) for _ in range(2)]
    listeners = [listening(rt, topic) for topic in topics]
    streams = [await listener.__aenter__() for listener in listeners]
    try:
        # Left as by a process that crashed after commit: no after-commit publication.
        rows = {
            topic: [
                await OutboxEntry.create(kind=OutboxKind.EVENT, topic=topic, payload={"n": n}) for n in range(40)
            ]
            for topic in topics
        }
        # Three relays at once (this process's own sweeps too), each sweeping twice.
        await asyncio.gather(*(relay.sweep(0.0) for relay in others + others), rt.relay.sweep(0.0))
        async with outbox.atomic():
            sentinels = [await outbox.emit(topic, {"n": "sentinel"}) for topic in topics]
        for topic, stream, sentinel in zip(topics, streams, sentinels, strict=True):
            got: list[Any] = []
            while not got or got[-1].data["_outbox"] != sentinel.id:
                got.extend(await take(stream, 1))
            sent = [event.data["_outbox"] for event in got[:-1]]
            # Each row once, and a topic's rows in the order written.
            assert sent == [row.id for row in rows[topic]], topic
    finally:
        for listener in listeners:
            await listener.__aexit__(None, None, None)
    await eventually(lambda: published(*(row.id for topic in topics for row in rows[topic])))


async def test_a_send_that_fails_after_commit_is_left_to_the_sweep(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = new_topic()
    real = rt.bus.publish_many
    refused: list[int] = []

    async def flaky(items: list[tuple[str, dict[str, Any]]]) -> None:
        mine = [data["_outbox"] for name, data in items if name == topic]
        if mine and not refused:
            refused.extend(mine)
            raise ConnectionError("the bus is down (test)")
        await real(items)

    monkeypatch.setattr(rt.bus, "publish_many", flaky)
    async with listening(rt, topic) as events:
        async with outbox.atomic():
            entry = await outbox.emit(topic, {"n": "retried"})
        (event,) = await take(events, 1)
    assert refused == [entry.id]
    assert event.data == {"n": "retried", "_outbox": entry.id}
    await eventually(lambda: published(entry.id))
    assert await OutboxEntry.filter(topic=topic).count() == 1
