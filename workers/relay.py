"""The outbox relay: publishes committed outbox rows to the event bus and the broker.

Fast path: the process that commits a transaction publishes the rows it wrote right after the
commit (``subscriptions.outbox.on_commit_rows``). One task per process takes every batch
committed meanwhile, claims those rows (``SELECT ... FOR UPDATE SKIP LOCKED``, still
unpublished), sends the events in one Redis pipeline and the jobs in one hop to the broker's
thread, and stamps them in the same transaction. Commits of one process go out in commit order.

Sweep: every ``outbox_sweep_seconds`` a process sends what a crash (or a failed send) left:
rows older than ``outbox_grace_seconds``, in id order, claimed ``FOR UPDATE SKIP LOCKED`` (a row
a fast path holds is skipped, never waited for). One relay sweeps at a time: the others find
the sweep lock taken (``pg_try_advisory_xact_lock``) and skip their turn instead of waiting.
The rows are not split by topic between sweepers: a transaction's event and its job (an
order's PAID and its deliver_order) must leave in that order, or DELIVERING could overtake
PAID. On SQLite there is one process: a local lock serialises the two paths instead.

Trade-log leaves written by a transaction are appended after its commit by processes that
consume jobs; an API process beside workers leaves its leaves to them (their next commit or
sweep appends every pending one), and every relay's sweep appends too, as a backstop.

Within a claim, events go before jobs: an event a job causes can never overtake an event
written before the job. Delivery is at least once: a relay that dies after sending and before
stamping sends the row again, with the same message id, and consumers are idempotent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
from dramatiq.errors import ActorNotFound
from tortoise import connections
from tortoise.transactions import in_transaction

from kameng.settings import Settings
from models.outbox import OutboxEntry, OutboxKind
from resolvers.discovery import events as behaviour
from resolvers.trust import tradelog
from subscriptions.bus import EventBus
from workers.broker import message_id_for, send

log = logging.getLogger(__name__)

BATCH = 200
_SWEEP_LOCK_KEY = 0x6B616D656E67  # "kameng": taken with pg_try_advisory_xact_lock, never waited for

class OutboxRelay:
    def __init__(self, settings: Settings, bus: EventBus, broker: dramatiq.Broker, *, append_on_commit: bool = True) -> None:
        self._settings = settings
        # Whether this process appends the trade log after its own commits. API processes beside
        # job workers leave that to the workers (whose commits and sweeps append every pending
        # leaf, the API's included): appends are serialised cluster-wide, and an API process
        # that took its turn after every payment spent its CPU queueing for the lock.
        self._append_on_commit = append_on_commit
        self._bus = bus
        self._broker = broker
        self._wake = asyncio.Event()  # the sweep
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        # The fast path: batches committed in this process, in commit order (a deque, since a
        # commit may happen on another thread); one task publishes them.
        self._committed: collections.deque[tuple[list[OutboxEntry], bool]] = collections.deque()
        self._publish = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._fast_lock = asyncio.Lock()  # one claim of committed rows at a time (keeps order)
        self._local_lock = asyncio.Lock()  # SQLite only: the fast path and the sweep, one at a time
        self._stopping = False
        # The trade log is appended beside the relay, never in its way (see _append_trade_log).
        self._appending: asyncio.Task[None] | None = None
        self._append_again = False

    def kick(self) -> None:
        """Wake the sweep (safe from any thread)."""
        self._call(self._wake.set)

    def committed(self, rows: list[OutboxEntry], trades: bool = False) -> None:
        """``rows`` (and trade-log rows if ``trades``) were just committed by this process:
        publish them now (the on-commit hook; safe from any thread, never blocks)."""
        if self._loop is None or self._stopping:
            return  # the sweep sends them
        self._committed.append((rows, trades))
        self._call(self._publish.set)

    def _call(self, callback: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            callback()
        else:
            loop.call_soon_threadsafe(callback)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        self._publisher = asyncio.create_task(self._run_publisher(), name="outbox-publisher")

    async def stop(self) -> None:
        # A flag, not only cancel(): on Python 3.11 asyncio.wait_for can swallow a
        # cancellation that lands as its timeout fires, and the loop would run on.
        self._stopping = True
        for task, event in ((self._publisher, self._publish), (self._task, self._wake)):
            if task is None:
                continue
            event.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=10)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._publisher = None
        if self._appending is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._appending), timeout=10)
            self._appending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._appending
            self._appending = None
        self._loop = None

    async def _run_publisher(self) -> None:
        while True:
            await self._publish.wait()
            self._publish.clear()
            await self.publish_committed()
            if self._stopping and not self._committed:
                return

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.outbox_sweep_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.sweep(self._settings.outbox_grace_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay: sweep failed; retrying on the next one")
                await asyncio.sleep(0.5)

    async def publish_committed(self) -> int:
        """Publish every batch committed in this process so far, all in one claim."""
        sent = 0
        async with self._fast_lock:
            while self._committed:
                rows: list[OutboxEntry] = []
                groups: list[list[int]] = []
                trades = False
                while self._committed and len(rows) < BATCH:
                    batch, wrote_trades = self._committed.popleft()
                    rows.extend(batch)
                    groups.append([row.id for row in batch])
                    trades = trades or wrote_trades
                if rows:
                    try:
                        sent += await self._claim_and_send(rows, groups)
                    except Exception:  # the bus, broker or database is down
                        log.exception("outbox relay: publishing after commit failed; the sweep sends those rows")
                if trades and self._append_on_commit:
                    self._append_trade_log()
        return sent

    async def drain(self) -> int:
        """Publish what this process committed and every pending row, whatever its age, then
        have committed trade events appended to the trade log; returns how many rows were sent."""
        total = await self.publish_committed()
        total += await self.sweep(0.0)
        return total

    async def sweep(self, grace: float) -> int:
        """Send the pending rows older than ``grace`` seconds (a crash's leftovers), then have
        committed trade events appended to the trade log; returns how many rows were sent."""
        cutoff = datetime.now(UTC) - timedelta(seconds=grace)
        total = 0
        while True:
            sent = await self._sweep_batch(cutoff)
            total += sent
            if sent < BATCH:
                break
        self._append_trade_log()
        return total

    async def _sweep_batch(self, cutoff: datetime) -> int:
        if self._settings.is_sqlite:  # one process, no row locks
            rows = await OutboxEntry.filter(published_at=None, created_at__lte=cutoff).order_by("id").limit(BATCH)
            return await self._claim_and_send(rows) if rows else 0
        async with in_transaction() as connection:
            taken = await connection.execute_query_dict("SELECT pg_try_advisory_xact_lock($1) AS taken", [_SWEEP_LOCK_KEY])
            if not taken[0]["taken"]:
                return 0  # another relay sweeps now: never wait for it
            found = await connection.execute_query_dict(
                "SELECT id FROM outbox WHERE published_at IS NULL AND created_at <= $1 "
                "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                [cutoff, BATCH],
            )
            if not found:
                return 0
            rows = await OutboxEntry.filter(id__in=[row["id"] for row in found]).order_by("id")
            return await self._send_and_stamp(rows)

    async def _claim_and_send(self, known: list[OutboxEntry], groups: list[list[int]] | None = None) -> int:
        """Claim the still-unpublished rows among ``known`` (skipping those another relay holds),
        send them and stamp them, in one transaction. ``groups`` (the fast path: the rows of each
        committed transaction) are all or nothing: a transaction the sweep is sending part of is
        left to the sweep, so that its event never leaves after its job."""
        by_id = {row.id: row for row in known}
        ids = list(by_id)
        if self._settings.is_sqlite:
            async with self._local_lock, in_transaction():
                pending = await OutboxEntry.filter(id__in=ids, published_at=None).values_list("id", flat=True)
                return await self._send_and_stamp([by_id[i] for i in sorted(pending)])
        async with in_transaction() as connection:
            claimed = {row["id"] for row in await connection.execute_query_dict(
                "SELECT id FROM outbox WHERE id = ANY($1::bigint[]) AND published_at IS NULL "
                "ORDER BY id FOR UPDATE SKIP LOCKED",
                [ids],
            )}  # fmt: skip
            if groups and len(claimed) < len(ids):
                held = {row["id"] for row in await connection.execute_query_dict(
                    "SELECT id FROM outbox WHERE id = ANY($1::bigint[]) AND published_at IS NULL", [ids],
                ) if row["id"] not in claimed}  # fmt: skip
                for group in groups:
                    if held.intersection(group):
                        claimed.difference_update(group)
            return await self._send_and_stamp([by_id[i] for i in sorted(claimed)])

    async def _send_and_stamp(self, rows: list[OutboxEntry]) -> int:
        """In the caller's transaction, which holds ``rows``: events in one pipeline, then jobs in
        one hop; the behaviour events of what left and its stamp. Raises if nothing could leave."""
        if not rows:
            return 0
        failure: Exception | None = None
        done: list[OutboxEntry] = [row for row in rows if row.kind == OutboxKind.TRACK]
        events = [row for row in rows if row.kind == OutboxKind.EVENT]
        jobs = [row for row in rows if row.kind == OutboxKind.JOB]
        try:
            if events:
                await self._bus.publish_many([(row.topic, {**row.payload, "_outbox": row.id}) for row in events])
                done.extend(events)
            if jobs:
                await self._publish_jobs(jobs)
                done.extend(jobs)
        except Exception as exc:  # the bus or broker is down: stamp what left, retry the rest
            failure = exc
        if done:
            done.sort(key=lambda row: row.id)
            # Server behaviour events, from the rows that left, in the transaction that
            # stamps them: written exactly once (resolvers/discovery/events.py).
            await behaviour.record_from_outbox(done)
            # Stamp what left, so that a retry does not send it again.
            stamped = [row.id for row in done]
            if self._settings.is_sqlite:
                await OutboxEntry.filter(id__in=stamped).update(published_at=datetime.now(UTC))
            else:  # one statement text whatever the batch's size (prepared once per connection)
                await connections.get("default").execute_query(
                    "UPDATE outbox SET published_at = $1 WHERE id = ANY($2::bigint[])", [datetime.now(UTC), stamped])
        if failure is not None and len(done) < len(rows):
            if not done:
                raise failure
            log.warning("outbox relay: %d of %d rows not sent (%s); the sweep retries", len(rows) - len(done), len(rows), failure)
        return len(done)

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

    async def _publish_jobs(self, rows: list[OutboxEntry]) -> None:
        jobs = [
            (row.id, row.topic, row.payload["kwargs"], message_id_for(row.id, self._settings.namespace),
             row.payload.get("delay_ms"))
            for row in rows
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
