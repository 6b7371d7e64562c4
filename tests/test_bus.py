"""The event bus, the same tests against MemoryBus and RedisBus (plus cross-process Redis).

Redis buses live under a random namespace that is deleted afterwards; without a reachable
Redis the "redis" variants skip (and fail under KAMENG_TEST_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

import subscriptions.bus as bus_module
from subscriptions.bus import Event, EventBus, MemoryBus, RedisBus, id_key
from tests.conftest import LOCAL_REDIS, drop_redis_namespace, eventually, new_namespace, reachable

RECEIVE_TIMEOUT = 5.0


def require_redis() -> None:
    if not reachable(LOCAL_REDIS, 6379):
        pytest.skip(f"Redis is not reachable at {LOCAL_REDIS}")


@contextlib.asynccontextmanager
async def redis_bus_factory() -> AsyncIterator[Callable[[], Awaitable[RedisBus]]]:
    """Started RedisBus instances sharing one fresh namespace (one per "process"); all their
    keys are deleted afterwards."""
    require_redis()
    namespace = new_namespace()
    made: list[tuple[RedisBus, Redis]] = []

    async def make() -> RedisBus:
        client = Redis.from_url(LOCAL_REDIS)
        bus = RedisBus(client, namespace)
        made.append((bus, client))
        await bus.start()
        return bus

    try:
        yield make
    finally:
        for bus, client in made:
            await bus.close()
            await client.aclose()
        await drop_redis_namespace(LOCAL_REDIS, namespace)


@pytest.fixture
async def redis_buses() -> AsyncIterator[Callable[[], Awaitable[RedisBus]]]:
    async with redis_bus_factory() as make:
        yield make


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "memory":
        memory = MemoryBus()
        await memory.start()
        try:
            yield memory
        finally:
            await memory.close()
    else:
        async with redis_bus_factory() as make:
            yield await make()


def new_topic() -> str:
    return f"t:{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def listening(bus: EventBus, topic: str, after: str | None = None) -> AsyncIterator[AsyncIterator[Event]]:
    """Subscribe (registered for live events once entered) and hand out the event iterator."""
    async with bus.subscribe(topic, after) as subscription:
        events = aiter(subscription)
        try:
            yield events
        finally:
            await events.aclose()  # type: ignore[attr-defined]


async def take(events: AsyncIterator[Event], count: int) -> list[Event]:
    async def collect() -> list[Event]:
        return [await anext(events) for _ in range(count)]

    return await asyncio.wait_for(collect(), RECEIVE_TIMEOUT)


def numbers(events: list[Event]) -> list[Any]:
    return [event.data["n"] for event in events]


async def publish_range(bus: EventBus, topic: str, numbers_: range) -> list[str]:
    return [await bus.publish(topic, {"n": n}) for n in numbers_]


async def test_publish_subscribe_delivers_in_order(bus: EventBus) -> None:
    topic = new_topic()
    async with listening(bus, topic) as events:
        ids = await publish_range(bus, topic, range(20))
        got = await take(events, 20)
    assert numbers(got) == list(range(20))
    assert [event.id for event in got] == ids
    assert all(event.topic == topic for event in got)
    assert [id_key(i) for i in ids] == sorted({id_key(i) for i in ids})  # strictly increasing


async def test_payload_round_trips(bus: EventBus) -> None:
    topic = new_topic()
    data = {"n": 1, "text": "héllo", "nested": {"list": [1, 2.5, None, True]}}
    async with listening(bus, topic) as events:
        await bus.publish(topic, data)
        (event,) = await take(events, 1)
    assert event.data == data


async def test_two_subscribers_both_get_every_event(bus: EventBus) -> None:
    topic = new_topic()
    async with listening(bus, topic) as first, listening(bus, topic) as second:
        assert bus.subscriber_count() == 2
        await publish_range(bus, topic, range(10))
        got_first, got_second = await asyncio.gather(take(first, 10), take(second, 10))
    assert numbers(got_first) == list(range(10))
    assert numbers(got_second) == list(range(10))
    assert [e.id for e in got_first] == [e.id for e in got_second]


async def test_topics_are_isolated(bus: EventBus) -> None:
    topic_a, topic_b = new_topic(), new_topic()
    async with listening(bus, topic_a) as events_a, listening(bus, topic_b) as events_b:
        await publish_range(bus, topic_b, range(100, 105))
        await bus.publish(topic_a, {"n": "a-sentinel"})
        await bus.publish(topic_b, {"n": "b-sentinel"})
        # The first event A sees is its own: none of B's five came before it.
        (first_a,) = await take(events_a, 1)
        got_b = await take(events_b, 6)
    assert first_a.data == {"n": "a-sentinel"} and first_a.topic == topic_a
    assert numbers(got_b) == [100, 101, 102, 103, 104, "b-sentinel"]
    assert all(event.topic == topic_b for event in got_b)
    assert await bus.replay(topic_a, "0-0") == [first_a]


async def test_earlier_events_are_not_live_but_replayed_after_an_id(bus: EventBus) -> None:
    topic = new_topic()
    early = await publish_range(bus, topic, range(3))  # nobody listens yet
    async with listening(bus, topic) as events:
        await bus.publish(topic, {"n": 3})
        (first,) = await take(events, 1)
    assert first.data == {"n": 3}  # 0, 1 and 2 were not delivered live

    async with listening(bus, topic, after=early[0]) as events:
        replayed = await take(events, 3)  # 1, 2 and 3 from the stream
        await bus.publish(topic, {"n": 4})
        (live,) = await take(events, 1)
    assert numbers(replayed) == [1, 2, 3]
    assert [e.id for e in replayed[:2]] == early[1:]
    assert live.data == {"n": 4}


async def test_resume_gets_exactly_the_missed_events_then_live_ones(bus: EventBus) -> None:
    topic = new_topic()
    async with listening(bus, topic) as events:
        await publish_range(bus, topic, range(5))
        seen = await take(events, 5)
    last = seen[-1].id
    assert bus.subscriber_count() == 0

    missed_ids = await publish_range(bus, topic, range(5, 9))  # while away
    async with listening(bus, topic, after=last) as events:
        missed = await take(events, 4)
        await publish_range(bus, topic, range(9, 12))
        live = await take(events, 3)
        await bus.publish(topic, {"n": "sentinel"})
        (after_live,) = await take(events, 1)
    assert numbers(missed) == [5, 6, 7, 8]
    assert [e.id for e in missed] == missed_ids
    assert numbers(live) == [9, 10, 11]
    # Nothing delivered twice: the very next event is the sentinel.
    assert after_live.data == {"n": "sentinel"}
    all_ids = [e.id for e in seen + missed + live + [after_live]]
    assert len(set(all_ids)) == len(all_ids)


async def test_resume_with_live_events_arriving_during_replay_has_no_duplicates(bus: EventBus) -> None:
    topic = new_topic()
    ids = await publish_range(bus, topic, range(30))
    async with listening(bus, topic, after=ids[9]) as events:
        # Published after registering but before the backlog is read: both paths see them.
        await publish_range(bus, topic, range(30, 40))
        got = await take(events, 30)
        await bus.publish(topic, {"n": "sentinel"})
        (sentinel,) = await take(events, 1)
    assert numbers(got) == list(range(10, 40))
    assert sentinel.data == {"n": "sentinel"}


async def test_no_gap_after_entering_subscribe(bus: EventBus) -> None:
    topic = new_topic()
    async with bus.subscribe(topic) as subscription:
        # Published right after entering, before anyone iterates.
        await bus.publish(topic, {"n": 0})
        await bus.publish(topic, {"n": 1})
        events = aiter(subscription)
        try:
            got = await take(events, 2)
        finally:
            await events.aclose()  # type: ignore[attr-defined]
    assert numbers(got) == [0, 1]


async def test_no_gap_for_a_concurrent_publisher(bus: EventBus) -> None:
    topic = new_topic()
    entered = asyncio.Event()
    done: list[Event] = []

    async def subscriber() -> None:
        async with listening(bus, topic) as events:
            entered.set()
            done.extend(await take(events, 5))

    task = asyncio.create_task(subscriber())
    await asyncio.wait_for(entered.wait(), RECEIVE_TIMEOUT)
    await publish_range(bus, topic, range(5))
    await asyncio.wait_for(task, RECEIVE_TIMEOUT)
    assert numbers(done) == list(range(5))


@pytest.mark.parametrize("consumed_first", [True, False], ids=["after-some", "before-any"])
async def test_slow_subscriber_catches_up_exactly_once_in_order(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, consumed_first: bool
) -> None:
    topic = new_topic()
    fast_seen: list[Event] = []
    async with listening(bus, topic) as fast:  # the default buffer: keeps up
        monkeypatch.setattr(bus_module, "SUBSCRIBER_BUFFER", 4)
        async with bus.subscribe(topic) as slow:
            slow_events = aiter(slow)
            try:
                start = 0
                if consumed_first:
                    await bus.publish(topic, {"n": 0})
                    assert numbers(await take(slow_events, 1)) == [0]
                    start = 1
                await publish_range(bus, topic, range(start, 30))
                # The slow one does not read meanwhile: its 4-slot buffer overflows.
                fast_seen = await take(fast, 30)
                await eventually(lambda: slow._listener.lagged)
                caught_up = await take(slow_events, 30 - start)
                await bus.publish(topic, {"n": "sentinel"})
                (sentinel,) = await take(slow_events, 1)
            finally:
                await slow_events.aclose()  # type: ignore[attr-defined]
    assert numbers(caught_up) == list(range(start, 30))
    assert [e.id for e in caught_up] == [e.id for e in fast_seen[start:]]
    assert sentinel.data == {"n": "sentinel"}  # nothing was delivered twice


async def test_a_lagging_subscriber_does_not_hold_up_others(bus: EventBus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "SUBSCRIBER_BUFFER", 2)
    topic = new_topic()
    async with bus.subscribe(topic) as idle, listening(bus, topic) as reader:  # idle never reads
        got = []
        for n in range(10):
            await bus.publish(topic, {"n": n})
            got.extend(await take(reader, 1))
        assert idle._listener.lagged
    assert numbers(got) == list(range(10))


async def test_unsubscribing_removes_listeners(bus: EventBus) -> None:
    topic_a, topic_b = new_topic(), new_topic()
    assert bus.subscriber_count() == 0
    async with bus.subscribe(topic_a), bus.subscribe(topic_a):
        async with bus.subscribe(topic_b):
            assert bus.subscriber_count() == 3
        assert bus.subscriber_count() == 2
    assert bus.subscriber_count() == 0

    with pytest.raises(LookupError):
        async with bus.subscribe(topic_a):
            assert bus.subscriber_count() == 1
            raise LookupError("the consumer failed")
    assert bus.subscriber_count() == 0

    # Subscribing again to a topic just left still delivers.
    async with listening(bus, topic_a) as events:
        await bus.publish(topic_a, {"n": "again"})
        (event,) = await take(events, 1)
    assert event.data == {"n": "again"}
    assert bus.subscriber_count() == 0


async def test_quick_resubscribe_cycles_keep_delivering(bus: EventBus) -> None:
    topic = new_topic()
    for n in range(5):
        async with listening(bus, topic) as events:
            await bus.publish(topic, {"n": n})
            (event,) = await take(events, 1)
        assert event.data == {"n": n}
    assert bus.subscriber_count() == 0


async def test_replay_is_ordered_and_exclusive(bus: EventBus) -> None:
    topic = new_topic()
    ids = await publish_range(bus, topic, range(5))
    assert numbers(await bus.replay(topic, "0-0")) == [0, 1, 2, 3, 4]
    assert [e.id for e in await bus.replay(topic, ids[2])] == ids[3:]
    assert await bus.replay(topic, ids[-1]) == []
    assert await bus.replay(new_topic(), "0-0") == []


# Redis only ------------------------------------------------------------------------------


async def test_redis_buses_in_two_processes_see_each_others_events(
    redis_buses: Callable[[], Awaitable[RedisBus]],
) -> None:
    one, two = await redis_buses(), await redis_buses()
    topic = new_topic()
    async with listening(one, topic) as at_one, listening(two, topic) as at_two:
        from_one = await one.publish(topic, {"n": "from one"})
        from_two = await two.publish(topic, {"n": "from two"})
        got_one, got_two = await asyncio.gather(take(at_one, 2), take(at_two, 2))
    assert numbers(got_one) == numbers(got_two) == ["from one", "from two"]
    assert [e.id for e in got_one] == [e.id for e in got_two] == [from_one, from_two]
    # Each sees the other's stored events too.
    assert [e.id for e in await two.replay(topic, "0-0")] == [from_one, from_two]
    async with listening(two, topic, after=from_one) as resumed:
        assert numbers(await take(resumed, 1)) == ["from two"]


async def test_redis_unsubscribe_releases_the_channel(redis_buses: Callable[[], Awaitable[RedisBus]]) -> None:
    bus = await redis_buses()
    topic = new_topic()
    channel = bus._channel(topic)
    observer = Redis.from_url(LOCAL_REDIS)
    try:

        async def subscribers_on_server() -> int:
            ((_, count),) = await observer.pubsub_numsub(channel)
            return int(count)

        async with bus.subscribe(topic), bus.subscribe(topic):
            assert await subscribers_on_server() == 1  # one connection per process, not per subscriber
        assert bus.subscriber_count() == 0
        await eventually(lambda: _is_zero(subscribers_on_server()))
    finally:
        await observer.aclose()


async def _is_zero(value: Awaitable[int]) -> bool:
    return await value == 0
