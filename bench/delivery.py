"""Paid-to-delivered throughput and payment-to-event latency on PostgreSQL + Redis (issue 3).

One run builds a Kameng deployment of its own on this machine -- a scratch PostgreSQL
database, a Redis namespace, ``kameng migrate``, one ``kameng serve`` and N ``kameng worker``
processes (``KAMENG_ENV=production``, jobs on a Redis broker, no in-process worker) -- seeds a
CARD_KEY product with its keys and 200 funded buyers with the project's own ORM (a helper
process: ``python -m bench.delivery seed N``), and then, with 200 concurrent buyers, each on a
keep-alive HTTP connection and a WebSocket of its own:

1. every buyer creates its order (``createOrder``) and subscribes to ``orderStatusChanged`` for
   it over graphql-transport-ws; the first message (the current state, PENDING_PAYMENT)
   proves the subscription is live;
2. baselines, measured in the same run and the same conditions (the 200 subscriptions open):
   bursts of 200 concurrent ``{ __typename }`` POSTs to the same API over the buyers' own
   connections, and bursts of 200 concurrent Redis PUBLISH -> subscriber round trips (one
   pub/sub connection for all channels, as the API's event bus holds);
3. all 200 call ``payOrder(WALLET)`` at once; for each order the client records when payOrder
   was sent and when the PAID, DELIVERING and DELIVERED events reached its subscription.

It prints the paid-to-delivered throughput (orders/s from the first payOrder sent to the last
DELIVERED event received), p50/p99 of payment -> PAID and payment -> DELIVERED, and their
ratios to the baselines; a second table splits the time with the order_event rows' timestamps
(same machine, same clock). It then checks in the database that every order was delivered
exactly once, one key each. Everything it made -- processes, the database, the namespace's
Redis keys, the data directory -- is removed at the end, also on failure, Ctrl-C, SIGTERM or
the overall time limit.

Since issue 15 it makes ``--rounds`` rounds of that burst, each followed by an open loop
(bench/delivery_open.py: ``--rate`` paid orders/s for ``--duration`` s, started on a schedule)
with a per-step breakdown, and prints min/median/max over the rounds.

    uv run python bench/delivery.py                        # 3 x (burst of 200, 100/s for 30 s)
    uv run python bench/delivery.py --workers 1 --threads 8
    uv run python bench/delivery.py --rounds 1 --orders 50 --rate 20 --duration 5   # a quick look
    uv run python bench/delivery.py --keep-logs            # keep the processes' logs

Services: PostgreSQL at ``--admin-url`` (trust auth, may CREATE DATABASE) and Redis at
``--redis-url``; both must be on 127.0.0.1. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
WARMUP = 4  # orders taken through the whole path before measuring: workers up, pools open

CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) {
  errors { code message } order { id status } } }"""
PAY = """mutation($input: PayOrderInput!) { payOrder(input: $input) { errors { code message } order { status } } }"""
TRACK = """subscription($id: ID!) { orderStatusChanged(orderId: $id) { status } }"""
TYPENAME = orjson.dumps({"query": "{ __typename }"})
TERMINAL = {"DELIVERED", "FAILED", "REFUNDED", "CANCELLED", "EXPIRED"}


def now() -> float:
    return time.perf_counter()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loopback_only(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"{url}: this benchmark runs on 127.0.0.1 only")


# ======================================================================================
# The helper process: seeds through the project's ORM with the deployment's own settings.


async def seed(count: int) -> dict[str, Any]:
    from strawberry.relay import GlobalID

    from models import database as db
    from tests.factories import fund, make_product, make_users, token_for

    await db.init_db()
    try:
        product = await make_product(keys=count, price="1.00", max_quantity=1)
        tokens = []
        for user in await make_users(count):
            await fund(user, "1.00")
            tokens.append(await token_for(user))
        return {"product": str(GlobalID("Product", str(product.id))), "product_pk": product.id, "tokens": tokens}
    finally:
        await db.close_db()


# ======================================================================================
# The deployment: database, namespace, processes. Every piece is undone by its context.


@dataclass
class Deployment:
    env: dict[str, str]
    dsn: str
    namespace: str
    port: int
    data_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def log(self, name: str) -> Path:
        return self.data_dir / f"{name}.log"

    def tail(self, name: str, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log(name).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SystemExit(f"`kameng {name.split('-')[0]}` ({name}) exited with {process.returncode}:\n{self.tail(name)}")


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str, name: str) -> AsyncIterator[str]:
    import asyncpg

    dsn = admin_url.replace("postgres://", "postgresql://", 1)
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"[cleanup] database {name} dropped", flush=True)
        finally:
            await admin.close()


async def drop_namespace(redis_url: str, namespace: str) -> int:
    """Delete every key of the namespace (the bus's streams, the broker's queues, limits)."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    dropped = 0
    try:
        async for key in client.scan_iter(match=f"{namespace}*", count=1000):
            dropped += await client.delete(key)
    finally:
        await client.aclose()
    return dropped


def child_env(database_url: str, redis_url: str, namespace: str, data_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith("KAMENG_") and k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}  # fmt: skip
    return {
        **keep,
        "KAMENG_ENV": "production",
        "DATABASE_URL": database_url + (f"?maxsize={args.db_pool}" if args.db_pool else ""),
        "REDIS_URL": redis_url,
        "BROKER_URL": redis_url,
        "KAMENG_NAMESPACE": namespace,
        "KAMENG_DATA_DIR": str(data_dir),
        "KAMENG_SECRET_KEY": secrets.token_urlsafe(48),
        "KAMENG_CARD_KEY_KEYS": "bench:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "KAMENG_FINGERPRINT_KEY": secrets.token_urlsafe(32),
        "KAMENG_TRADELOG_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "KAMENG_INPROCESS_WORKER": "false",
        "KAMENG_WORKER_THREADS": str(args.threads),
        "KAMENG_LOG_LEVEL": args.log_level,
        "KAMENG_ORDER_RESERVATION_SECONDS": str(args.reservation),
    }


async def run_helper(env: dict[str, str], *argv: str, timeout: float = 90) -> str:
    """A short-lived child (migrate, seed): its stdout, or SystemExit with its stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed ({process.returncode}):\n{err.decode()[-3000:]}")
    return out.decode()


def start(deployment: Deployment, name: str, *argv: str) -> None:
    log = deployment.log(name).open("ab")
    deployment.processes[name] = subprocess.Popen(
        [sys.executable, "-m", "service", *argv], cwd=ROOT, env=deployment.env,
        stdout=log, stderr=log, start_new_session=True,  # our Ctrl-C is ours: we stop them
    )  # fmt: skip
    log.close()


async def stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 15
    for process in processes.values():
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()


async def wait_ready(deployment: Deployment, timeout: float = 60) -> None:
    conn = Http(deployment.port)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        deployment.check_alive()
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            await conn.open()
            status, body = await asyncio.wait_for(conn.request("GET", "/readyz"), 5)
            await conn.close()
            if status == 200:
                return
            last = body.decode(errors="replace")
        if time.monotonic() > deadline:
            raise SystemExit(f"/readyz did not answer 200 within {timeout:g} s ({last})")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def deployment(args: argparse.Namespace) -> AsyncIterator[tuple[Deployment, dict[str, Any]]]:
    namespace = f"kbench{uuid.uuid4().hex[:10]}"
    data_dir = Path(tempfile.mkdtemp(prefix="kameng-bench-delivery-"))
    failed = True
    try:
        async with scratch_database(args.admin_url, namespace) as dsn:
            env = child_env(dsn, args.redis_url, namespace, data_dir, args)
            dep = Deployment(env, dsn, namespace, free_port(), data_dir)
            try:
                print(f"[setup] database {namespace}, Redis namespace {namespace}, data {data_dir}", flush=True)
                await run_helper(env, "service", "migrate")
                start(dep, "serve", "serve", "--host", "127.0.0.1", "--port", str(dep.port), "--workers", str(args.api_processes))
                for n in range(args.workers):
                    start(dep, f"worker-{n}", "worker")
                seeded = orjson.loads((await run_helper(env, "bench.delivery", "seed", str(args.rounds * args.orders + WARMUP),
                                                        timeout=300)).strip().splitlines()[-1])  # fmt: skip
                if args.rate > 0:
                    each = args.rounds * -(-int(args.rate * args.duration) // args.open_buyers)
                    seeded["open"] = orjson.loads((await run_helper(
                        env, "bench.delivery_open", "seed", str(args.open_buyers), str(each), str(args.products), timeout=600,
                    )).strip().splitlines()[-1])  # fmt: skip
                await wait_ready(dep)
                yield dep, seeded
                failed = False
            finally:
                if failed:
                    for name in dep.processes:
                        if dep.tail(name):
                            print(f"--- last lines of {name}.log\n{dep.tail(name)}", file=sys.stderr)
                await stop_all(dep.processes)
                print(f"[cleanup] {len(dep.processes)} processes stopped", flush=True)
    finally:
        try:
            dropped = await drop_namespace(args.redis_url, namespace)
            print(f"[cleanup] Redis namespace {namespace}: {dropped} keys deleted", flush=True)
        except Exception as exc:  # noqa: BLE001 - say so, and go on cleaning
            print(f"[cleanup] could not delete the Redis keys {namespace}*: {exc}", file=sys.stderr)
        if args.keep_logs:
            print(f"(logs kept in {data_dir})")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


# ======================================================================================
# The client: one keep-alive HTTP/1.1 connection and one WebSocket per buyer.


class Http:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams (httpx would cost the
    client more CPU than the requests it times, on the machine the server shares)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def request(self, method: str, path: str, body: bytes = b"", token: str | None = None) -> tuple[int, bytes]:
        if self.reader is None or self.reader.at_eof():
            # uvicorn closes idle keep-alive connections after 5 s; reconnect as a browser would
            # (touch() below does it before the timed phases).
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readuntil(b"\r\n")
            return status, b"".join(chunks)
        raise ValueError(f"an answer with neither Content-Length nor chunked: {headers}")

    async def gql(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
        status, body = await self.request("POST", "/graphql", orjson.dumps({"query": query, "variables": variables or {}}), token)
        data = orjson.loads(body)
        if status != 200 or data.get("errors"):
            raise RuntimeError(f"HTTP {status}: {data}")
        return data["data"]


@dataclass
class Buyer:
    token: str
    http: Http
    order: str = ""  # global ID
    order_pk: int = 0
    ws: Any = None
    reader: asyncio.Task[None] | None = None
    live: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    events: dict[str, tuple[float, float]] = field(default_factory=dict)  # status -> (perf, wall) at receipt
    statuses: list[str] = field(default_factory=list)
    problem: str = ""
    create_ms: float = 0.0
    pay_sent: float = 0.0
    pay_sent_wall: float = 0.0
    pay_done: float = 0.0
    pay_done_wall: float = 0.0


async def create_order(buyer: Buyer, product: str) -> int:
    """createOrder; returns how many attempts answered INSUFFICIENT_STOCK before one succeeded.

    There are as many keys as orders, so that code is wrong here: concurrent buyers lose the
    race for the same key (see bench/README.md); the order is only set-up, so try again."""
    refused = 0
    while True:
        started = now()
        data = await buyer.http.gql(CREATE, {"input": {"productId": product, "quantity": 1, "idempotencyKey": uuid.uuid4().hex}}, buyer.token)
        buyer.create_ms = (now() - started) * 1e3
        payload = data["createOrder"]
        if not payload["errors"]:
            break
        if payload["errors"][0]["code"] != "INSUFFICIENT_STOCK" or refused >= 50:
            raise RuntimeError(f"createOrder: {payload['errors']} (after {refused} INSUFFICIENT_STOCK)")
        refused += 1
        await asyncio.sleep(0.01 * refused)
    buyer.order = payload["order"]["id"]
    from strawberry.relay import GlobalID

    buyer.order_pk = int(GlobalID.from_id(buyer.order).node_id)
    return refused


async def subscribe(buyer: Buyer, url: str) -> None:
    import websockets

    buyer.ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=30, ping_interval=None,
                                        max_size=2**20, compression=None)  # fmt: skip
    await buyer.ws.send(orjson.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {buyer.token}"}}).decode())
    ack = orjson.loads(await asyncio.wait_for(buyer.ws.recv(), 30))
    if ack["type"] != "connection_ack":
        raise RuntimeError(f"connection_init: {ack}")
    await buyer.ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": TRACK, "variables": {"id": buyer.order}}}).decode())
    buyer.reader = asyncio.create_task(follow(buyer))
    await asyncio.wait_for(buyer.live.wait(), 30)
    if buyer.problem:
        raise RuntimeError(buyer.problem)


async def follow(buyer: Buyer) -> None:
    """Time-stamp every message of the buyer's subscription as it arrives."""
    try:
        async for raw in buyer.ws:
            at, wall = now(), time.time()
            message = orjson.loads(raw)
            kind = message["type"]
            if kind == "ping":
                await buyer.ws.send('{"type":"pong"}')
                continue
            if kind == "next" and not message["payload"].get("errors"):
                status = message["payload"]["data"]["orderStatusChanged"]["status"]
                buyer.statuses.append(status)
                buyer.events.setdefault(status, (at, wall))
                buyer.live.set()
                if status in TERMINAL:
                    buyer.done.set()
            elif kind != "pong":
                buyer.problem = f"order {buyer.order_pk}: {message}"
                buyer.live.set()
                buyer.done.set()
                return
    except Exception as exc:  # noqa: BLE001 - reported, the run fails on it
        buyer.problem = buyer.problem or f"order {buyer.order_pk}: subscription lost ({type(exc).__name__}: {exc})"
    finally:
        buyer.live.set()
        buyer.done.set()


async def pay(buyer: Buyer) -> None:
    body = orjson.dumps({"query": PAY, "variables": {"input": {"orderId": buyer.order, "method": "WALLET"}}})
    buyer.pay_sent_wall = time.time()
    buyer.pay_sent = now()
    status, answer = await buyer.http.request("POST", "/graphql", body, buyer.token)
    buyer.pay_done, buyer.pay_done_wall = now(), time.time()
    data = orjson.loads(answer)
    if status != 200 or data.get("errors") or data["data"]["payOrder"]["errors"]:
        buyer.problem = buyer.problem or f"order {buyer.order_pk}: payOrder answered {status} {data}"
        buyer.done.set()


async def touch(buyers: list[Buyer]) -> None:
    """Make sure every buyer's connection is open and fresh before a timed phase."""

    async def one(buyer: Buyer) -> None:
        try:
            status, _ = await buyer.http.request("POST", "/graphql", TYPENAME)
        except (ConnectionError, asyncio.IncompleteReadError):  # closed by the server meanwhile
            await buyer.http.close()
            await buyer.http.open()
            status, _ = await buyer.http.request("POST", "/graphql", TYPENAME)
        if status != 200:
            raise RuntimeError(f"{{ __typename }} answered {status}")

    await gather_limited(50, [one(b) for b in buyers])


async def gather_limited(limit: int, coros: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


# ======================================================================================
# Baselines, measured in the same run.


@dataclass
class Burst:
    latencies: list[float] = field(default_factory=list)  # seconds
    rates: list[float] = field(default_factory=list)  # per burst: n / (last answer - first sent)


async def http_baseline(buyers: list[Buyer], bursts: int) -> Burst:
    """Bursts of one ``{ __typename }`` POST per buyer, all at once, on the buyers' connections."""
    result = Burst()
    for round_ in range(bursts + 1):  # the first burst warms up and is not counted
        times: list[tuple[float, float]] = []

        async def one(buyer: Buyer) -> None:
            sent = now()
            status, body = await buyer.http.request("POST", "/graphql", TYPENAME)
            times.append((sent, now()))
            if status != 200 or body != b'{"data":{"__typename":"Query"}}':
                raise RuntimeError(f"{{ __typename }} answered {status} {body[:200]!r}")

        await asyncio.gather(*(one(b) for b in buyers))
        if round_:
            result.latencies += [done - sent for sent, done in times]
            result.rates.append(len(times) / (max(d for _, d in times) - min(s for s, _ in times)))
        await asyncio.sleep(0.2)
    return result


async def redis_baseline(url: str, namespace: str, n: int, bursts: int) -> Burst:
    """Bursts of n concurrent PUBLISH, one per channel, to one subscriber connection holding
    all n channels: the floor of the event bus's live path."""
    from redis.asyncio import Redis

    sub, pub = Redis.from_url(url), Redis.from_url(url, max_connections=n + 8)  # one per concurrent PUBLISH
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    channels = [f"{namespace}:bench:{i}" for i in range(n)]
    arrived: dict[bytes, asyncio.Future[float]] = {}
    result = Burst()

    async def read() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "message":
                future = arrived.get(message["channel"])
                if future is not None and not future.done():
                    future.set_result(now())

    try:
        await pubsub.subscribe(*channels)
        reader = asyncio.create_task(read())
        try:
            for round_ in range(bursts + 1):
                loop = asyncio.get_running_loop()
                arrived.clear()
                arrived.update({c.encode(): loop.create_future() for c in channels})

                async def one(channel: str) -> tuple[float, float]:
                    sent = now()
                    await pub.publish(channel, b"x")
                    return sent, await arrived[channel.encode()]

                times = await asyncio.wait_for(asyncio.gather(*(one(c) for c in channels)), 30)
                if round_:
                    result.latencies += [got - sent for sent, got in times]
                    result.rates.append(n / (max(g for _, g in times) - min(s for s, _ in times)))
                await asyncio.sleep(0.2)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        await sub.aclose()
        await pub.aclose()
    return result


# ======================================================================================
# Diagnostics of the timed phase: what the database sessions wait on, CPU per process.


class WaitSampler:
    """Samples pg_stat_activity of the scratch database every ``interval`` seconds: which
    statements are waiting, on what (a lock, the client, I/O)."""

    def __init__(self, dsn: str, database: str, interval: float = 0.05) -> None:
        self.dsn, self.database, self.interval = dsn, database, interval
        self.samples = 0
        self.active: list[int] = []
        self.waits: dict[tuple[str, str], int] = {}
        self._task: asyncio.Task[None] | None = None
        self.backend_cpu = 0.0  # CPU seconds of the database's server processes meanwhile

    async def _backends(self) -> dict[int, float]:
        pids = await self._connection.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database)
        return {row["pid"]: own_cpu_seconds(row["pid"]) for row in pids}

    async def __aenter__(self) -> WaitSampler:
        import asyncpg

        self._connection = await asyncpg.connect(self.dsn.replace("postgres://", "postgresql://", 1))
        self._before = await self._backends()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        # Backends that exited meanwhile are missed; the pools keep theirs open.
        after = await self._backends()
        self.backend_cpu = sum(cpu - self._before.get(pid, 0.0) for pid, cpu in after.items())
        await self._connection.close()

    async def _run(self) -> None:
        sql = ("SELECT state, coalesce(wait_event_type || ':' || wait_event, 'on CPU') AS wait, "
               "regexp_replace(left(query, 70), '\\s+', ' ', 'g') AS query FROM pg_stat_activity "
               "WHERE datname = $1 AND pid <> pg_backend_pid() AND state <> 'idle'")  # fmt: skip
        while True:
            rows = await self._connection.fetch(sql, self.database)
            self.samples += 1
            self.active.append(len(rows))
            for row in rows:
                if row["state"] == "idle in transaction":
                    key = ("idle in transaction (the app holds it)", row["query"])
                else:
                    key = (row["wait"], row["query"])
                self.waits[key] = self.waits.get(key, 0) + 1
            await asyncio.sleep(self.interval)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children that are still running (uvicorn --workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(entry.name) == pid or int(fields[1]) == pid:  # fields[1] is the ppid
                total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all CPUs, all processes), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


# ======================================================================================
# The run.


@dataclass
class Results:
    orders: int
    http: Burst
    redis: Burst
    buyers: list[Buyer]
    first_pay: float
    last_delivered: float
    rows: dict[int, dict[str, float]]  # order -> status -> wall time of its order_event row
    checks: list[str]
    waits: WaitSampler
    cpu: dict[str, float]  # process -> CPU seconds during the timed phase
    wall: float  # the timed phase's length

    @property
    def throughput(self) -> float:
        span = self.last_delivered - self.first_pay
        return self.orders / span if span > 0 else float("nan")


async def order_events(dsn: str, orders: list[int]) -> dict[int, dict[str, float]]:
    import asyncpg

    connection = await asyncpg.connect(dsn.replace("postgres://", "postgresql://", 1))
    try:
        rows = await connection.fetch("SELECT order_id, status, at FROM order_event WHERE order_id = ANY($1::bigint[])", orders)
    finally:
        await connection.close()
    found: dict[int, dict[str, float]] = {}
    for row in rows:
        at: datetime = row["at"]
        found.setdefault(row["order_id"], {}).setdefault(row["status"], at.timestamp())
    return found


async def verify_orders(dsn: str, orders: list[int]) -> list[str]:
    """What must hold afterwards: every order DELIVERED once, one SOLD key each."""
    import asyncpg

    connection = await asyncpg.connect(dsn.replace("postgres://", "postgresql://", 1))
    try:
        async def value(sql: str, *params: Any) -> Any:
            return await connection.fetchval(sql, *params)

        problems = []
        delivered = await value("SELECT count(*) FROM orders WHERE id = ANY($1::bigint[]) AND status = 'DELIVERED'", orders)
        if delivered != len(orders):
            problems.append(f"{delivered} of {len(orders)} orders DELIVERED")
        twice = await value("SELECT count(*) FROM (SELECT order_id FROM order_event WHERE order_id = ANY($1::bigint[]) "
                            "AND status = 'DELIVERED' GROUP BY order_id HAVING count(*) <> 1) AS t", orders)  # fmt: skip
        if twice:
            problems.append(f"{twice} orders with more or less than one DELIVERED event")
        sold = await value("SELECT count(DISTINCT order_id) FROM card_key WHERE order_id = ANY($1::bigint[]) AND status = 'SOLD'", orders)
        keys = await value("SELECT count(*) FROM card_key WHERE order_id = ANY($1::bigint[])", orders)
        if sold != len(orders) or keys != len(orders):
            problems.append(f"keys: {keys} bound to the orders, {sold} orders with a SOLD key (expected {len(orders)})")
        return problems
    finally:
        await connection.close()


async def bench(args: argparse.Namespace) -> tuple[list[Results], list[Any]]:
    """Warm-up, then ``--rounds`` rounds of (closed-loop burst, open-loop schedule)."""
    from bench.delivery_open import job_rows, print_open, run_open_loop

    bursts: list[Results] = []
    opens: list[Any] = []
    async with deployment(args) as (dep, seeded):
        tokens: list[str] = seeded["tokens"]
        for round_no in range(1, args.rounds + 1):
            # The first WARMUP tokens warm up (first round only); then --orders fresh buyers a round.
            mine = tokens[:WARMUP] + tokens[WARMUP + (round_no - 1) * args.orders:WARMUP + round_no * args.orders]
            bursts.append(await burst_round(args, dep, seeded, mine, warm_up=round_no == 1))
            print(f"[round {round_no}] burst: {bursts[-1].orders} orders, {bursts[-1].throughput:.1f} orders/s", flush=True)
            if args.rate > 0:
                print(f"[round {round_no}] open loop: {args.rate:g} paid orders/s for {args.duration:g} s", flush=True)
                pids = {name: process.pid for name, process in dep.processes.items()}
                cpu_before, started = {name: cpu_seconds(pid) for name, pid in pids.items()}, now()
                opened = await run_open_loop(dep.port, dep.ws_url, seeded["open"]["tokens"], seeded["open"]["products"],
                                             args.rate, args.duration, args.lead, args.deliver_timeout)  # fmt: skip
                opened.wall = now() - started
                opened.cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
                orders = [b.order_pk for b in opened.orders if b.order_pk]
                await asyncio.sleep(0.5)
                opened.rows = await order_events(dep.dsn, orders)
                opened.job_rows = await job_rows(dep.dsn, orders)
                opened.checks += await verify_orders(dep.dsn, orders)
                opens.append(opened)
                print_open(opened, round_no)
                dep.check_alive()
    return bursts, opens


async def burst_round(args: argparse.Namespace, dep: Deployment, seeded: dict[str, Any], tokens: list[str],
                      warm_up: bool) -> Results:  # fmt: skip
    """The closed-loop burst: len(tokens) - WARMUP buyers pay at once (the first WARMUP buyers
    warm the path up on the first round)."""
    if True:  # (the body of the single burst before issue 15, kept as it was)
        buyers = [Buyer(token, Http(dep.port)) for token in (tokens if warm_up else tokens[WARMUP:])]
        warm, measured = (buyers[:WARMUP], buyers[WARMUP:]) if warm_up else ([], buyers)
        await gather_limited(50, [b.http.open() for b in buyers])

        if warm_up:
            print(f"[warm-up] {WARMUP} orders through the whole path, {args.workers} worker(s) x {args.threads} threads", flush=True)
        for buyer in warm if warm_up else []:
            await create_order(buyer, seeded["product"])
            await subscribe(buyer, dep.ws_url)
        if warm_up:
            await asyncio.gather(*(pay(b) for b in warm))
            try:
                await asyncio.wait_for(asyncio.gather(*(b.done.wait() for b in warm)), 60)
            except TimeoutError:
                dep.check_alive()
                raise SystemExit("the warm-up orders were not delivered within 60 s: are the workers consuming?") from None
            if bad := [b.problem or f"order {b.order_pk}: {b.statuses}" for b in warm if "DELIVERED" not in b.events]:
                raise SystemExit(f"warm-up failed: {bad}")

        n = len(measured)
        print(f"[setup] {n} buyers: createOrder, then subscribe to orderStatusChanged", flush=True)
        refused = await asyncio.gather(*(create_order(b, seeded["product"]) for b in measured))
        if sum(refused):
            print(f"[setup] createOrder: {sum(1 for x in refused if x)} of {n} concurrent buyers were answered "
                  f"INSUFFICIENT_STOCK ({sum(refused)} times in all) with {n} keys for {n} orders; retried", flush=True)
        await gather_limited(args.connect_concurrency, [subscribe(b, dep.ws_url) for b in measured])
        dep.check_alive()

        print(f"[baseline] {args.bursts} bursts of {n} concurrent {{ __typename }} POSTs, of {n} Redis PUBLISH", flush=True)
        redis = await redis_baseline(args.redis_url, dep.namespace, n, args.bursts)
        await touch(measured)
        http = await http_baseline(measured, args.bursts)

        print(f"[measure] {n} concurrent payOrder(WALLET), waiting for DELIVERED on every subscription", flush=True)
        await touch(measured)
        await asyncio.sleep(0.3)
        pids = {name: process.pid for name, process in dep.processes.items()}
        cpu_before = {**{name: cpu_seconds(pid) for name, pid in pids.items()},
                      "bench client": time.process_time(), "machine": machine_busy_seconds()}  # fmt: skip
        wall_before = now()
        async with WaitSampler(dep.dsn, dep.namespace) as waits:
            await asyncio.gather(*(pay(b) for b in measured))
            try:
                await asyncio.wait_for(asyncio.gather(*(b.done.wait() for b in measured)), args.deliver_timeout)
            except TimeoutError:
                pass  # reported below, with what did arrive
        wall = now() - wall_before
        cpu_after = {**{name: cpu_seconds(pid) for name, pid in pids.items()},
                     "bench client": time.process_time(), "machine": machine_busy_seconds()}  # fmt: skip
        cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
        cpu["postgres (this database)"] = waits.backend_cpu
        first_pay = min(b.pay_sent for b in measured)
        delivered = [b.events["DELIVERED"][0] for b in measured if "DELIVERED" in b.events]
        last_delivered = max(delivered) if delivered else float("nan")
        dep.check_alive()

        orders = [b.order_pk for b in measured]
        checks = [b.problem for b in measured if b.problem]
        missing = [b for b in measured if "DELIVERED" not in b.events and not b.problem]
        if missing:
            checks.append(f"{len(missing)} subscriptions saw no DELIVERED within {args.deliver_timeout:g} s "
                          f"(e.g. order {missing[0].order_pk}: {missing[0].statuses})")  # fmt: skip
        out_of_order = [b for b in measured if b.statuses and [s for s in b.statuses if s != "PENDING_PAYMENT"]
                        != ["PAID", "DELIVERING", "DELIVERED"]]  # fmt: skip
        if out_of_order:
            checks.append(f"{len(out_of_order)} subscriptions saw another sequence (e.g. {out_of_order[0].statuses})")
        # The workers may still be finishing when the client gave up: let the database settle.
        await asyncio.sleep(0.5)
        checks += await verify_orders(dep.dsn, orders)
        rows = await order_events(dep.dsn, orders)
        for buyer in buyers:
            with contextlib.suppress(Exception):
                await buyer.ws.close()
            await buyer.http.close()
        return Results(n, http, redis, measured, first_pay, last_delivered, rows, checks, waits, cpu, wall)


# ======================================================================================
# The report.


def print_report(r: Results, args: argparse.Namespace) -> None:
    ms = 1e3
    b50, b99 = pct(r.http.latencies, 0.5), pct(r.http.latencies, 0.99)
    r50, r99 = pct(r.redis.latencies, 0.5), pct(r.redis.latencies, 0.99)
    base_rate = pct(r.http.rates, 0.5)
    span = r.last_delivered - r.first_pay
    throughput = r.orders / span if span > 0 else float("nan")

    def since_pay(status: str) -> list[float]:
        return [b.events[status][0] - b.pay_sent for b in r.buyers if status in b.events and b.pay_sent]

    print()
    print(f"== Kameng delivery: {r.orders} concurrent orders, PostgreSQL + Redis (broker and bus), "
          f"{args.api_processes} API process(es), {args.workers} worker process(es) x {args.threads} threads, "
          f"DB pool {args.db_pool or 'default (KAMENG_DB_POOL_SIZE, 20)'} per process")  # fmt: skip
    print(f"  paid-to-delivered throughput: {r.orders} orders in {span:.2f} s -> {throughput:.1f} orders/s "
          f"(first payOrder sent -> last DELIVERED event received)")  # fmt: skip
    print(f"  baseline: {{ __typename }} x {r.orders} concurrent -> {base_rate:.0f} req/s (median of {len(r.http.rates)} bursts); "
          f"ratio orders/s : req/s = {throughput / base_rate:.3f}")  # fmt: skip
    print()
    header = (f"  {'latency (ms)':<34} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8}   {'p50/http':>8} {'p99/http':>8}"
              f"   {'p50/redis':>9} {'p99/redis':>9}")  # fmt: skip
    print(header)
    print("  " + "-" * (len(header) - 2))

    def line(label: str, values: list[float], ratios: bool = True) -> None:
        p50, p99 = pct(values, 0.5), pct(values, 0.99)
        text = f"  {label:<34} {len(values):>5} {p50 * ms:>8.2f} {p99 * ms:>8.2f} {max(values, default=float('nan')) * ms:>8.2f}"
        if ratios and values:
            text += f"   {p50 / b50:>8.1f} {p99 / b99:>8.1f}   {p50 / r50:>9.1f} {p99 / r99:>9.1f}"
        print(text)

    line(f"baseline HTTP {{ __typename }} x{r.orders}", r.http.latencies)
    line(f"baseline Redis PUBLISH->sub x{r.orders}", r.redis.latencies)
    line("createOrder (set-up, last attempt)", [b.create_ms / ms for b in r.buyers])
    line("payOrder answer", [b.pay_done - b.pay_sent for b in r.buyers if b.pay_done])
    line("payment -> PAID event", since_pay("PAID"))
    line("payment -> DELIVERING event", since_pay("DELIVERING"))
    line("payment -> DELIVERED event", since_pay("DELIVERED"))

    # Where the time goes: the order_event rows' timestamps (written by the API or a worker
    # on this machine's clock) against the client's wall clock.
    def split(start: str | None, end: str, client_end: bool = False) -> list[float]:
        values = []
        for b in r.buyers:
            row = r.rows.get(b.order_pk, {})
            begin = b.pay_sent_wall if start is None else row.get(start)
            finish = b.events.get(end, (0.0, None))[1] if client_end else row.get(end)
            if begin is not None and finish:
                values.append(finish - begin)
        return values

    print()
    print(f"  {'where the time goes (ms)':<34} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8}")
    print("  " + "-" * 66)
    for label, values in (
        ("payOrder sent -> PAID row", split(None, "PAID")),
        ("PAID row -> PAID event at client", split("PAID", "PAID", client_end=True)),
        ("PAID row -> DELIVERING row (queue)", split("PAID", "DELIVERING")),
        ("DELIVERING row -> DELIVERED row", split("DELIVERING", "DELIVERED")),
        ("DELIVERED row -> event at client", split("DELIVERED", "DELIVERED", client_end=True)),
    ):
        line(label, values, ratios=False)

    print()
    cpu = dict(r.cpu)
    machine = cpu.pop("machine")
    others = max(0.0, machine - sum(cpu.values()))  # redis-server and the kernel are in here too
    print(f"  CPU during the timed phase ({r.wall:.2f} s, {os.cpu_count()} CPUs, 100 % = one CPU): "
          + ", ".join(f"{name} {seconds / r.wall * 100:.0f} %" for name, seconds in cpu.items())
          + f"; everything else {others / r.wall * 100:.0f} %")  # fmt: skip
    if others / r.wall > 0.3:
        print("  WARNING: other processes used the CPUs meanwhile: the figures are slower than on a quiet machine")
    w = r.waits
    if w.samples:
        print(f"  database sessions of the run, sampled {w.samples} times: {sum(w.active) / w.samples:.1f} busy on average "
              f"(max {max(w.active)}); sessions on average in each state (wait, last statement):")  # fmt: skip
        for (wait, query), count in sorted(w.waits.items(), key=lambda item: -item[1])[:8]:
            print(f"    {count / w.samples:>6.2f}  {wait:<40} {query}")


async def main_async(args: argparse.Namespace) -> int:
    for url in (args.admin_url, args.redis_url):
        loopback_only(url)
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)  # clean up on SIGTERM as on Ctrl-C
    started = time.monotonic()
    try:
        async with asyncio.timeout(args.timeout):
            bursts, opens = await bench(args)
    except TimeoutError:
        print(f"\nFAILED: the run did not finish within {args.timeout:g} s (everything was cleaned up)", file=sys.stderr)
        return 1
    from bench.delivery_open import summary

    results = bursts[-1]
    print_report(results, args)
    print(f"\n== over {len(bursts)} round(s), interleaved (burst, then open loop) in one deployment")
    print(summary(f"burst of {results.orders}: orders/s", [r.throughput for r in bursts]))
    print(summary("burst: payment -> DELIVERED p99 (ms)", [
        pct([b.events["DELIVERED"][0] - b.pay_sent for b in r.buyers if "DELIVERED" in b.events], 0.99) * 1e3 for r in bursts]))
    if opens:
        print(summary(f"open loop {args.rate:g}/s: committed -> DELIVERED p50 (ms)", [pct(o.commit_to_delivered(), 0.5) * 1e3 for o in opens]))
        print(summary(f"open loop {args.rate:g}/s: committed -> DELIVERED p99 (ms)", [pct(o.commit_to_delivered(), 0.99) * 1e3 for o in opens]))
        print(summary(f"open loop {args.rate:g}/s: payOrder sent -> DELIVERED p99 (ms)", [pct(o.sent_to_delivered(), 0.99) * 1e3 for o in opens]))
        print(summary(f"open loop {args.rate:g}/s: workers' CPU per order (ms)", [o.workers_cpu_per_order() * 1e3 for o in opens]))
    print(f"\n  ({time.monotonic() - started:.0f} s in all, set-up and clean-up included)")
    checks = [c for r in bursts for c in r.checks] + [c for o in opens for c in o.checks]
    if checks:
        print("\nFAILED:\n  " + "\n  ".join(checks[:20]), file=sys.stderr)
        return 1
    delivered = sum(r.orders for r in bursts) + sum(len(o.orders) for o in opens)
    print(f"  checked: {delivered} orders DELIVERED exactly once, one SOLD key each, events in order")
    print("\nReproduce: cd " + shlex.quote(str(ROOT)) + " && uv run python bench/delivery.py"
          + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:]))  # fmt: skip
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "seed":  # the helper process
        result = asyncio.run(seed(int(sys.argv[2])))
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200, help="concurrent buyers, one order each (200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (burst, open loop), for min/median/max (3)")
    parser.add_argument("--rate", type=float, default=100, help="open loop: paid orders per second, 0 = none (100)")
    parser.add_argument("--duration", type=float, default=30, help="open loop: seconds of arrivals per round (30)")
    parser.add_argument("--lead", type=float, default=1.5, help="open loop: an order is set up this long before its slot (1.5 s)")
    parser.add_argument("--open-buyers", type=int, default=300, help="open loop: buyers, each paying every N/rate s (300)")
    parser.add_argument("--products", type=int, default=10, help="open loop: products the orders spread over (10)")
    parser.add_argument("--workers", type=int, default=2, help="`kameng worker` processes (2)")
    parser.add_argument("--threads", type=int, default=4, help="worker threads per worker process (4)")
    parser.add_argument("--api-processes", type=int, default=1, help="`kameng serve --workers` (1)")
    parser.add_argument("--db-pool", type=int, default=0,
                        help="connections per process: DATABASE_URL ?maxsize=N (default: Tortoise's, 5)")
    parser.add_argument("--connect-concurrency", type=int, default=50,
                        help="subscriptions opened at once (50)")
    parser.add_argument("--reservation", type=int, default=900,
                        help="seconds an unpaid order holds its stock (900, the default); a short one brings what "
                             "follows every order a reservation later into the run, as at steady state")
    parser.add_argument("--bursts", type=int, default=5, help="baseline bursts of --orders requests (5)")
    parser.add_argument("--timeout", type=float, default=900, help="the whole run, set-up included (900 s)")
    parser.add_argument("--deliver-timeout", type=float, default=90, help="wait for DELIVERED at most (90 s)")
    parser.add_argument("--admin-url", default=ADMIN_URL, help=f"PostgreSQL admin URL ({ADMIN_URL})")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis, also the broker ({REDIS_URL})")
    parser.add_argument("--log-level", default="WARNING", help="KAMENG_LOG_LEVEL of the processes (WARNING)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted (everything was cleaned up)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
