"""The Redis queue between API processes and the event writer (resolvers/discovery/event_queue.py):
an API process only queues, a writer drains; one drainer at a time, device merges after the
events queued before them, and a crashed drainer's batches written by the next one, once.

On the services run the stack's own Redis carries the queue; on the embedded run (no Redis in
the stack) these tests lend the runtime a client of the local Redis for their duration."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from kameng import runtime
from kameng.redis import connect
from models.discovery.events import BehaviourEvent
from resolvers.discovery import event_queue, ingest
from tests.conftest import LOCAL_REDIS, reachable
from tests.factories import make_product, make_user, token_for
from tests.test_events import track, view

pytestmark = pytest.mark.skipif(not reachable(LOCAL_REDIS, 6379), reason="needs Redis")


@pytest.fixture
async def api_only(rt: runtime.Runtime) -> AsyncIterator[None]:
    """This process as an API process with Redis that does not write: no drainer for the test."""
    drainer = rt.local.pop("discovery.event_drainer", None)
    if drainer is not None:
        await drainer.stop()
    lent = rt.redis is None
    if lent:
        rt.redis = connect(LOCAL_REDIS)
    try:
        yield
    finally:
        if drainer is not None:
            event_queue.start()
        if lent:
            await ingest.buffer().flush()  # nothing of this test left for the in-process writer
            await rt.redis.delete(*event_queue._keys())
            await rt.redis.aclose()
            rt.redis = None


async def count(event_ids: list[str]) -> int:
    return await BehaviourEvent.filter(event_id__in=event_ids).count()


async def test_an_api_process_queues_and_a_writer_drains_once(make_client, rt, api_only) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    batch = [view(product.id) for _ in range(500)]
    ids = [e["eventId"] for e in batch]
    waiting = await event_queue.backlog()
    assert (await track(make_client(), batch))["accepted"] == 500
    assert await ingest.buffer().flush() == 500
    assert await count(ids) == 0 and await event_queue.backlog() == waiting + 1  # queued, not written

    # A drainer that died after moving the batch to its "draining" list: the next one writes it.
    queue, draining, lock = event_queue._keys()
    assert rt.redis is not None
    await rt.redis.lmove(queue, draining, "LEFT", "RIGHT")
    # While another drainer holds the lock, nothing is written twice or out of order.
    await rt.redis.set(lock, "someone-else", px=60_000)
    assert await event_queue.drain() == 0 and await count(ids) == 0
    await rt.redis.delete(lock)
    assert await event_queue.drain() >= 500
    assert await count(ids) == 500
    assert await rt.redis.llen(draining) == 0 and not await rt.redis.exists(lock)
    # The same batch queued again (a resend): still stored once.
    assert (await track(make_client(), batch))["accepted"] == 500
    await ingest.buffer().flush()
    await event_queue.drain()
    assert await count(ids) == 500


async def test_a_device_merge_waits_for_the_events_queued_before_it(make_client, rt, api_only) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    device = f"dev-{uuid.uuid4().hex}"
    anonymous = [view(product.id) for _ in range(3)]
    assert (await track(make_client(), anonymous, device))["accepted"] == 3
    await ingest.buffer().flush()  # queued in one batch...
    user = await make_user()
    signed = make_client()
    signed.token = await token_for(user)
    mine = [view(product.id)]
    assert (await track(signed, mine, device))["accepted"] == 1
    await ingest.buffer().flush()  # ...and the merge in the next
    await event_queue.drain()
    rows = await BehaviourEvent.filter(event_id__in=[e["eventId"] for e in anonymous + mine])
    assert len(rows) == 4 and {r.user_id for r in rows} == {user.id}


async def test_an_unreadable_batch_is_dropped_and_the_rest_written(make_client, rt, api_only) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    queue, _, _ = event_queue._keys()
    await rt.redis.rpush(queue, b"not json")
    good = [view(product.id) for _ in range(5)]
    assert (await track(make_client(), good))["accepted"] == 5
    await ingest.buffer().flush()
    await event_queue.drain()
    assert await count([e["eventId"] for e in good]) == 5 and await event_queue.backlog() == 0
