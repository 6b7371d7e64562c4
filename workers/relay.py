"""The outbox relay: publishes committed outbox rows to the event bus and the broker.

Every process that writes outbox rows runs one: it is woken right after a commit (the fast
path) and also sweeps on a timer, which is how rows left behind by a crash still leave.
Rows are published in id order under one cluster-wide lock (a PostgreSQL advisory lock;
on SQLite there is one process), so events of a topic arrive in the order they were
written. Delivery is at least once: a relay that dies after sending and before stamping
sends the row again, with the same message id, and consumers are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.errors import ActorNotFound
from tortoise.transactions import in_transaction

from kameng.settings import Settings
from models.outbox import OutboxEntry, OutboxKind
from resolvers.discovery import events as behaviour
from resolvers.trust import tradelog
from subscriptions.bus import EventBus
from workers.broker import message_id_for, send

log = logging.getLogger(__name__)

BATCH = 200
_ADVISORY_LOCK_KEY = 0x6B616D656E67  # "kameng"


class OutboxRelay:
    def __init__(self, settings: Settings, bus: EventBus, broker: dramatiq.Broker) -> None:
        self._settings = settings
        self._bus = bus
        self._broker = broker
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._local_lock = asyncio.Lock()
        self._stopping = False
        # The trade log is appended beside the relay, never in its way (see _append_trade_log).
        self._appending: asyncio.Task[None] | None = None
        self._append_again = False

    def kick(self) -> None:
        """Wake the relay (safe from any thread)."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            # A flag, not only cancel(): on Python 3.11 asyncio.wait_for can swallow a
            # cancellation that lands as its timeout fires, and the loop would run on.
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._appending is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._appending), timeout=10)
            self._appending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._appending
            self._appending = None
        self._loop = None

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.outbox_sweep_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay: batch failed; retrying on the next sweep")
                await asyncio.sleep(0.5)

    async def drain(self) -> int:
        """Publish every pending row, then have committed trade events appended to the trade
        log (in the order they became visible); returns how many rows were sent."""
        total = 0
        while True:
            sent = await self._relay_batch()
            total += sent
            if sent < BATCH:
                break
        self._append_trade_log()
        return total

    def _append_trade_log(self) -> None:
        """Append the trade log in a task of its own: hashing a batch of leaves must not hold
        back the next events (a logout closing sockets, an order's DELIVERED). Requests that
        arrive while it runs are coalesced into one more pass; the trust sweep catches up
        on anything left."""
        if self._appending is not None and not self._appending.done():
            self._append_again = True
            return
        self._appending = asyncio.create_task(self._append_passes(), name="trade-log-append")

    async def _append_passes(self) -> None:
        while True:
            self._append_again = False
            try:
                await tradelog.append_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trade log: append failed; the trust sweep retries")
            if not self._append_again or self._stopping:
                return

    async def _relay_batch(self) -> int:
        """Publish up to BATCH pending rows in id order, holding the cluster-wide lock only as
        long as that takes: consecutive events go out in one Redis pipeline, consecutive jobs
        in one hop to the broker's thread."""
        failure: Exception | None = None
        done: list[int] = []
        async with self._local_lock, in_transaction() as connection:
            if not self._settings.is_sqlite:
                await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [_ADVISORY_LOCK_KEY])
            rows = await OutboxEntry.filter(published_at=None).order_by("id").limit(BATCH)
            for run in _runs(rows):
                try:
                    await self._publish_run(run)
                except Exception as exc:  # the bus or broker is down: keep order, retry later
                    failure = exc
                    break
                done.extend(row.id for row in run)
            if done:
                # Server behaviour events, from the rows that left, in the transaction that
                # stamps them: written exactly once (resolvers/discovery/events.py).
                sent = set(done)
                await behaviour.record_from_outbox([row for row in rows if row.id in sent])
                # Stamp what left, so that a retry does not send it again.
                await OutboxEntry.filter(id__in=done).update(published_at=datetime.now(UTC))
        if failure is not None:
            raise failure
        return len(done)

    async def _publish_run(self, run: list[OutboxEntry]) -> None:
        if run[0].kind == OutboxKind.TRACK:
            return  # nothing to send: the behaviour event is written when the row is stamped
        if run[0].kind == OutboxKind.EVENT:
            await self._bus.publish_many([(row.topic, {**row.payload, "_outbox": row.id}) for row in run])
            return
        jobs = [
            (row.id, row.topic, row.payload["kwargs"], message_id_for(row.id, self._settings.namespace),
             row.payload.get("delay_ms"))
            for row in run
        ]
        # Broker clients (pika, redis-py sync) block: keep them off the event loop.
        await asyncio.to_thread(self._send_jobs, jobs)

    def _send_jobs(self, jobs: list[tuple[int, str, dict[str, Any], str, int | None]]) -> None:
        for row_id, actor_name, kwargs, message_id, delay_ms in jobs:
            try:
                send(self._broker, actor_name, kwargs, message_id, delay_ms)
            except ActorNotFound:
                # Can never succeed (a job no process declares): log it and move on, rather
                # than block every later row behind it.
                log.error("outbox relay: row %s names unknown job %r; dropped", row_id, actor_name)


def _runs(rows: list[OutboxEntry]) -> list[list[OutboxEntry]]:
    """Consecutive rows of the same kind, in order."""
    runs: list[list[OutboxEntry]] = []
    for row in rows:
        if runs and runs[-1][0].kind == row.kind:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs
