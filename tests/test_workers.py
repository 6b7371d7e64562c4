"""Jobs: the broker chosen from BROKER_URL, every job declared on it, jobs sent through the
outbox and run by the stack's worker (idempotently), and round trips through real brokers."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message

from kameng.runtime import Runtime
from kameng.settings import Settings
from models.accounts.users import AuthSession, User
from models.accounts.notifications import Notification
from models.outbox import OutboxEntry
from resolvers.accounts.users import create_user
from service import wiring
from subscriptions import jobs, outbox
from tests.conftest import (
    LOCAL_AMQP,
    LOCAL_REDIS,
    Client,
    drop_amqp_queues,
    drop_redis_namespace,
    eventually,
    new_namespace,
    reachable,
)
from tests.test_community_realtime import ROOT, _env
from workers import accounts as notification_jobs
from workers.broker import build_broker, message_id_for, queue_name, send
from workers.consumers import Consumers
from workers.actors import load_all
from workers.jobs import JOBS


def broker_settings(tmp_path: Path, broker_url: str | None, namespace: str | None = None) -> Settings:
    return Settings(
        namespace=namespace or new_namespace(), data_dir=tmp_path, secret_key="x" * 40, broker_url=broker_url
    )


def close(broker: dramatiq.Broker) -> None:
    broker.close()
    if isinstance(broker, RedisBroker):
        broker.client.close()


# Choosing and declaring -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (None, StubBroker),
        ("redis://127.0.0.1:6379/0", RedisBroker),
        ("rediss://cache.example.com:6380/1", RedisBroker),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", RabbitmqBroker),
        ("amqps://guest:guest@mq.example.com:5671/%2F", RabbitmqBroker),
    ],
)
def test_build_broker_picks_the_broker_from_the_url(tmp_path: Path, url: str | None, kind: type) -> None:
    settings = broker_settings(tmp_path, url)
    broker = build_broker(settings)  # connects to nothing yet
    try:
        assert type(broker) is kind
        if isinstance(broker, RedisBroker):
            # Every dramatiq key lives under this deployment's namespace.
            assert broker.namespace.startswith(settings.namespace)
    finally:
        close(broker)


@pytest.mark.parametrize(
    "url", ["kafka://127.0.0.1:9092", "http://127.0.0.1:6379", "postgres://db/x", "127.0.0.1:6379"]
)
def test_build_broker_rejects_other_schemes(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="BROKER_URL"):
        build_broker(broker_settings(tmp_path, url))


@pytest.mark.parametrize("url", [None, "redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672/%2F"])
def test_every_job_is_declared_on_a_namespaced_queue(tmp_path: Path, url: str | None) -> None:
    load_all()
    assert "notify_new_signin" in JOBS
    settings = broker_settings(tmp_path, url)
    broker = build_broker(settings)
    try:
        for name, spec in JOBS.items():
            actor = broker.get_actor(name)
            expected = f"{settings.namespace}.{spec.queue}"
            assert queue_name(settings, spec.queue) == expected
            assert actor.queue_name == expected
            assert expected in broker.get_declared_queues()
            for option, value in spec.options.items():
                assert actor.options[option] == value
        assert broker.get_actor("notify_new_signin").options["max_retries"] == 5
        # Nothing outside the namespace is declared.
        assert all(q.startswith(f"{settings.namespace}.") for q in broker.get_declared_queues())
    finally:
        close(broker)


def test_two_namespaces_do_not_share_queues(tmp_path: Path) -> None:
    one, two = build_broker(broker_settings(tmp_path, None)), build_broker(broker_settings(tmp_path, None))
    assert one.get_declared_queues().isdisjoint(two.get_declared_queues())


def test_message_id_for_is_stable_and_distinct() -> None:
    first = message_id_for(1, "kta")
    assert first == message_id_for(1, "kta")
    assert str(uuid.UUID(first)) == first
    assert first != message_id_for(2, "kta")
    assert first != message_id_for(1, "ktb")
    assert len({message_id_for(i, ns) for i in range(100) for ns in ("kta", "ktb")}) == 200


def test_send_enqueues_with_the_given_message_id(tmp_path: Path) -> None:
    settings = broker_settings(tmp_path, None)
    broker = build_broker(settings)
    assert isinstance(broker, StubBroker)
    queue = broker.queues[queue_name(settings, "default")]
    message_id = message_id_for(42, settings.namespace)
    send(broker, "notify_new_signin", {"session_id": "abc"}, message_id)
    send(broker, "notify_new_signin", {"session_id": "abc"}, message_id)  # a re-sent row
    messages = [Message.decode(queue.get_nowait()) for _ in range(2)]
    assert queue.empty()
    for message in messages:
        assert message.message_id == message_id
        assert message.actor_name == "notify_new_signin"
        assert message.kwargs == {"session_id": "abc"}
        assert message.args == ()
        assert message.queue_name == queue_name(settings, "default")


# End to end through the running stack ---------------------------------------------------


async def new_session(user: User) -> AuthSession:
    return await AuthSession.create(
        id=uuid.uuid4(),
        user=user,
        refresh_hash="0" * 64,
        expires_at=datetime.now(UTC) + timedelta(days=1),
        user_agent="pytest",
        ip="198.51.100.7",
    )


async def signin_notes(session_id: uuid.UUID | str) -> list[Notification]:
    return await Notification.filter(dedupe_key=f"signin:{session_id}")


async def test_a_job_enqueued_in_atomic_runs_once(rt: Runtime) -> None:
    user = await create_user(f"{uuid.uuid4().hex[:12]}@example.com", "correct horse battery", "Jobber")
    session = await new_session(user)
    assert await signin_notes(session.id) == []  # creating a session directly sends nothing

    async with outbox.atomic():
        entry = await outbox.enqueue(jobs.notify_new_signin(str(session.id)))

    notes = await eventually(lambda: signin_notes(session.id))
    assert len(notes) == 1
    (note,) = notes
    assert note.user_id == user.id and note.kind == "NEW_SIGNIN"
    assert note.data == {"sessionId": str(session.id)}
    assert "198.51.100.7" in note.body and "pytest" in note.body
    await eventually(lambda: OutboxEntry.filter(id=entry.id, published_at__isnull=False).exists())

    # At-least-once delivery: running the job again does not notify again.
    await notification_jobs.notify_new_signin(str(session.id))
    await notification_jobs.notify_new_signin(str(session.id))
    assert [n.id for n in await signin_notes(session.id)] == [note.id]
    assert await Notification.filter(user_id=user.id, kind="NEW_SIGNIN").count() == 1


async def test_concurrent_runs_of_the_job_notify_once(rt: Runtime) -> None:
    user = await create_user(f"{uuid.uuid4().hex[:12]}@example.com", "correct horse battery", "Racer")
    session = await new_session(user)
    await asyncio.gather(*(notification_jobs.notify_new_signin(str(session.id)) for _ in range(5)))
    assert len(await signin_notes(session.id)) == 1


async def test_the_job_ignores_a_missing_session(rt: Runtime) -> None:
    missing = uuid.uuid4()
    await notification_jobs.notify_new_signin(str(missing))
    assert await signin_notes(missing) == []


async def test_login_notifies_the_new_signin_once(client: Client) -> None:
    registered = await client.register(nickname="Signer")
    user_id = (await User.get(email=registered["email"])).id
    signed_in = await client.login(registered["email"], registered["password"])
    assert signed_in["errors"] == []
    session_id = signed_in["refreshToken"].split(".", 1)[0]

    notes = await eventually(lambda: signin_notes(session_id))
    assert len(notes) == 1 and notes[0].user_id == user_id
    # Registering opened a session too, but only the sign-in notifies.
    assert await Notification.filter(user_id=user_id, kind="NEW_SIGNIN").count() == 1
    assert await Notification.filter(user_id=user_id, kind="WELCOME").count() == 1


# Round trips through real brokers -------------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "amqp"])
async def test_real_broker_round_trip(tmp_path: Path, kind: str) -> None:
    url, port = (LOCAL_REDIS, 6379) if kind == "redis" else (LOCAL_AMQP, 5672)
    if not reachable(url, port):
        pytest.skip(f"{kind} broker not reachable at {url}")
    namespace = new_namespace()
    settings = broker_settings(tmp_path, url, namespace)
    broker = build_broker(settings)
    queue = queue_name(settings, "default")
    seen: list[str] = []

    def probe(value: str) -> None:
        seen.append(value)

    actor_name = f"probe_{namespace}"
    dramatiq.actor(probe, broker=broker, queue_name=queue, actor_name=actor_name)
    worker: dramatiq.Worker | None = None
    try:
        # As the relay sends: with a message id derived from the outbox row.
        message_id = message_id_for(7, namespace)
        await asyncio.to_thread(send, broker, actor_name, {"value": "hello"}, message_id)
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
        await asyncio.to_thread(worker.start)
        await eventually(lambda: seen == ["hello"], timeout=10)
        if isinstance(broker, RedisBroker):
            await asyncio.to_thread(broker.join, queue, timeout=5000)
        else:
            await asyncio.to_thread(broker.join, queue, min_successes=2, idle_time=50, timeout=5000)
        assert seen == ["hello"]
    finally:
        if worker is not None:
            await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(close, broker)
        if kind == "redis":
            await drop_redis_namespace(url, namespace)
        else:
            await asyncio.to_thread(drop_amqp_queues, url, namespace, [queue])


@pytest.mark.parametrize("url", [None, LOCAL_REDIS])
async def test_consumers_poll_the_queues_buyers_wait_on_fastest(
    tmp_path: Path, url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    if url is not None and not reachable(url, 6379):
        pytest.skip(f"redis broker not reachable at {url}")
    namespace = new_namespace()
    settings = broker_settings(tmp_path, url, namespace).model_copy(
        update={"worker_poll_ms": 50, "worker_background_poll_ms": 700}
    )
    broker = build_broker(settings)
    seen: list[str] = []

    def probe(value: str) -> None:
        seen.append(value)

    for queue in ("delivery", "default"):
        dramatiq.actor(probe, broker=broker, queue_name=queue_name(settings, queue), actor_name=f"probe_{queue}")
    consumers = Consumers(broker, settings, threads=1)
    try:
        with caplog.at_level(logging.WARNING, logger="dramatiq"):
            await asyncio.to_thread(consumers.start)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "an expected duplicate is not news"
        paces = consumers.queues
        # Every declared queue and its delay queue is consumed once, at its pace.
        declared = broker.get_declared_queues() | broker.get_declared_delay_queues()
        assert set(paces) == declared
        fast = {queue_name(settings, q) for q in ("delivery", "feeds")}
        assert {q for q, pace in paces.items() if pace == 50} == fast | {f"{q}.DQ" for q in fast}
        assert all(pace == 700 for q, pace in paces.items() if q.removesuffix(".DQ") not in fast)
        # And both workers run jobs.
        for queue in ("delivery", "default"):
            await asyncio.to_thread(send, broker, f"probe_{queue}", {"value": queue}, message_id_for(1, queue))
        await eventually(lambda: sorted(seen) == ["default", "delivery"], timeout=10)
    finally:
        await asyncio.to_thread(consumers.stop)
        await asyncio.to_thread(close, broker)
        if url is not None:
            await drop_redis_namespace(url, namespace)


# Start-up -------------------------------------------------------------------------------------

#: Run in a fresh interpreter (this one has the segmenter loaded by earlier tests): what a process
#: that runs jobs has loaded when its consumers and its sweeps start.
_AT_START = """
import asyncio, json
from kameng import text
from service import wiring
from workers.consumers import Consumers
from workers.scheduler import Scheduler

seen = {}
for cls, what in ((Consumers, "jobs"), (Scheduler, "sweeps")):
    def start(self, _start=cls.start, _what=what):
        seen[_what] = text._jieba is not None
        _start(self)
    cls.start = start

async def main():
    await wiring.start(apply_migrations=True, run_worker=True)
    await wiring.stop()

asyncio.run(main())
print(json.dumps(seen))
"""


def test_a_process_that_runs_jobs_loads_the_segmenter_before_its_first_job(tmp_path: Path) -> None:
    """jieba's dictionary (about a second of CPU) is loaded off the loop before jobs and sweeps
    start. Before, the first sweep that indexed a product loaded it on the loop every async actor
    shares, and each new worker's deliveries waited that long (seen with py-spy, bench/README)."""
    services = ("DATABASE_URL", "REDIS_URL", "BROKER_URL")  # the embedded default: SQLite, in-process parts
    env = {k: v for k, v in _env("", new_namespace(), tmp_path).items() if k not in services}
    done = subprocess.run([sys.executable, "-c", _AT_START], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"jobs": True, "sweeps": True}


def test_a_job_the_stopped_loop_refuses_leaves_no_coroutine_unawaited() -> None:
    """A job picked up while the loop that runs async actors is stopped (the tests' session loop,
    between tests) is refused as dramatiq refuses it, and retried; its coroutine is closed, not
    left to warn "was never awaited" wherever the refusal's traceback is later let go."""
    loop = asyncio.new_event_loop()
    ran = []

    async def job() -> None:
        ran.append(True)

    coroutine = job()
    try:
        with pytest.raises(RuntimeError, match="Event loop is not running"):
            wiring._LoopBridge(loop).run_coroutine(coroutine)
    finally:
        loop.close()
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
    assert ran == []
