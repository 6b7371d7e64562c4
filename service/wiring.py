"""Starting and stopping the process's runtime: the API (app.py) and `kameng worker` call this.

The runtime (kameng/runtime.py) owns: the ORM, the Redis client (when configured), the event bus, the rate
limiter, the dramatiq broker with every job declared on it, the outbox relay, and, on the
embedded default, dramatiq workers consuming jobs inside this process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import dramatiq
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread, set_event_loop_thread

from models import database as db
from resolvers.discovery import event_queue
from resolvers.discovery import ingest as event_ingest
from resolvers.lifecycle import exposures as experiment_exposures
from kameng.runtime import Runtime, install, is_started
from kameng.runtime import current as current
from kameng.ratelimit import RateLimiter
from kameng.redis import connect
from kameng import text
from kameng.settings import Settings, configure, get_settings
from service.web import cache_sync
from subscriptions import cache_tags, outbox
from subscriptions.bus import EventBus, MemoryBus, RedisBus
from workers.broker import build_broker
from workers.consumers import Consumers
from workers.relay import OutboxRelay
from workers.scheduler import Scheduler

log = logging.getLogger(__name__)
R = TypeVar("R")


class _LoopBridge:
    """Runs dramatiq's async actors on an event loop that is already running.

    dramatiq hands each coroutine of an async actor to the "event loop thread"; in the API
    process that loop is uvicorn's own, where the ORM and Redis clients live.
    """

    interrupt_check_ival = 0.1

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run_coroutine(self, coro: Coroutine[Any, Any, R]) -> R:
        # dramatiq refuses a coroutine when the loop is not running but leaves it unclosed: the
        # refusal's traceback holds it until the message is retried, and then Python warns
        # "coroutine ... was never awaited" far from the cause. Only the tests' session loop stops
        # with workers consuming (between tests); a serving process stops its workers first.
        if not self.loop.is_running():
            coro.close()
            raise RuntimeError("Event loop is not running.")  # dramatiq's own refusal, and the retry it brings
        return EventLoopThread.run_coroutine(self, coro)  # type: ignore[arg-type]


async def start(
    settings: Settings | None = None,
    *,
    broker: dramatiq.Broker | None = None,
    apply_migrations: bool = False,
    run_worker: bool | None = None,
    sweeps: bool | None = None,
    relay: bool = True,
) -> Runtime:
    """Start this process's runtime on the running loop (idempotent per process)."""
    if is_started():
        return current()
    settings = settings or get_settings()
    configure(settings)
    # Refuse to start without the secrets, before anything else.
    settings.signing_secret()
    settings.card_keyring()
    settings.fingerprint_secret()
    settings.tradelog_key_seed()

    if apply_migrations:
        await db.migrate(settings)
    await db.init_db(settings)

    redis = connect(settings.redis_url, settings.redis_max_connections) if settings.redis_url else None
    bus: EventBus = RedisBus(redis, settings.namespace) if redis is not None else MemoryBus()
    await bus.start()
    limiter = RateLimiter(settings.redis_url, settings.namespace)
    broker = broker or build_broker(settings)
    consume = settings.run_inprocess_worker if run_worker is None else run_worker
    sweeping = consume if sweeps is None else sweeps  # processes that consume jobs also sweep
    outbox_relay = OutboxRelay(settings, bus, broker, append_on_commit=sweeping)
    if relay:
        outbox.on_commit_rows(outbox_relay.committed)  # published by this process at once
        outbox_relay.start()
    if redis is not None:  # response cache invalidations for the other processes (issue 15)
        cache_tags.set_publisher(cache_sync.Publisher(redis, settings.namespace, settings.response_cache_ack_ms))

    runtime = Runtime(settings, redis, bus, limiter, broker, outbox_relay)
    install(runtime)
    if consume or sweeping:
        # jieba's dictionary (about a second of CPU) off the loop, before the first job or sweep
        # segments text: loaded inside one (the first sweep indexing a product), on the loop every
        # async actor shares, it held each new worker's deliveries that long (bench/README).
        await asyncio.to_thread(text.warm_up)
    if consume:
        if get_event_loop_thread() is None:
            set_event_loop_thread(_LoopBridge(asyncio.get_running_loop()))  # type: ignore[arg-type]
        runtime.consumers = Consumers(broker, settings, settings.worker_threads)
        runtime.consumers.start()
    # Processes that consume jobs also sweep for what timers, crashes and lost messages left.
    if sweeping:
        runtime.scheduler = Scheduler(settings.sweep_seconds)
        runtime.scheduler.start()
        event_queue.start()  # and write the behaviour events the API processes queued in Redis
    outbox_relay.kick()  # sweep whatever an earlier run left pending
    return runtime


async def stop() -> None:
    if not is_started():
        return
    runtime = current()
    if runtime.scheduler is not None:
        await runtime.scheduler.stop()
    if runtime.consumers is not None:
        # stop() joins worker threads that may be waiting on this loop: never block it.
        await asyncio.to_thread(runtime.consumers.stop)
        if isinstance(get_event_loop_thread(), _LoopBridge):
            set_event_loop_thread(None)
    await runtime.relay.stop()
    cache_tags.set_publisher(None)
    await cache_sync.stop()
    await event_ingest.stop()  # writes (or queues) the behaviour events still buffered
    await event_queue.stop()  # and writes what the queue holds, if this process is a writer
    await experiment_exposures.stop()  # and the experiment exposures
    outbox.clear_commit_hooks()
    await runtime.bus.close()
    if runtime.redis is not None:
        await runtime.redis.aclose()
    runtime.broker.close()
    await db.close_db()
    install(None)
