"""Behaviour-event ingestion on PostgreSQL and Redis (issue 11 item 1).

Two figures:

1. **Write throughput per worker**: what one writer process does with the queue the API
   processes fill (resolvers/discovery/event_queue.py): batches of ``--batch`` events queued as
   an API process queues them (orjson blobs), then decoded and written with COPY into a fresh
   database, 5 blobs per COPY as ``drain`` takes them. Events/s over ``--rounds`` rounds
   (min/median/max) and this process's CPU per event; only the writes are timed.
2. **The API's latency while it ingests at ``--rate`` events/s**: ``kameng serve`` (one uvicorn
   process) and one ``kameng worker`` (the writer) on PostgreSQL + Redis. In interleaved
   rounds ``{ __typename }`` is asked one request at a time for ``--seconds``, idle and then
   while an open-loop load sends batches of 500 events on a schedule (``--rate`` events/s, not
   "as fast as answered": a saturated process has no unchanged latency to show) through
   ``--via graphql`` (the ``track`` mutation), ``--via events`` (``POST /events``) or ``both``.
   Per round: median and p99 idle and loaded, the ratio of the medians (1.0 = unchanged), the
   rate the server actually took, and how long after the last batch every event was in the
   table (checked by count). ``--server-cpu N`` pins the API process to CPU N and the rest
   of the bench to the others. The load generator is a process of its own that builds its
   bodies before the round, so neither its CPU nor its sockets land on the probe's loop.

   ``--control`` adds, in every round, the same idle and loaded samples with the load sent to a
   second ``kameng serve`` process instead: the probed process then ingests nothing, and the
   ratio measures only what the load costs the machine (its CPUs shared by the writer,
   PostgreSQL, Redis, the load generator and the probe). The API's own share is the first
   ratio over the control's.

    uv run python bench/events.py                     # needs PostgreSQL and Redis on localhost
    uv run python bench/events.py --rounds 5 --rate 20000 --seconds 5
    uv run python bench/events.py --skip-throughput --via events
    uv run python bench/events.py --skip-throughput --via events --control
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402

PG = os.environ.get("KAMENG_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("KAMENG_BENCH_REDIS", "redis://127.0.0.1:6379/0")
TRACK = "mutation($input: TrackInput!) { track(input: $input) { errors { code } accepted } }"
BATCH = 500


def spread(values: list[float]) -> str:
    return f"min {min(values):,.3f}  median {statistics.median(values):,.3f}  max {max(values):,.3f}"


def p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * 0.99))]


async def throughput(dsn: str, namespace: str, data_dir: Path, events: int, batch: int, rounds: int) -> list[float]:
    from kameng.settings import Settings, configure
    from models import database as db
    from models.discovery.events import EventKind
    from resolvers.discovery import event_queue
    from resolvers.discovery.tracking import TrackedEvent, as_row

    settings = Settings(database_url=dsn, namespace=namespace, data_dir=data_dir, secret_key=uuid.uuid4().hex * 2)
    configure(settings)
    await db.migrate(settings)
    await db.init_db(settings)
    rates = []
    try:
        for r in range(rounds):
            now = datetime.now(UTC)
            blobs = []
            for start in range(0, events, batch):  # as API processes queue them
                built = [
                    TrackedEvent(event_id=f"b{r}-{i}-{uuid.uuid4().hex[:12]}", kind=EventKind.PRODUCT_VIEW,
                                 device_id=f"device-{i % 5000:05d}", product_id=i % 997 + 1, surface="HOME",
                                 client_time=now, occurred_at=now)
                    for i in range(start, min(start + batch, events))
                ]
                blobs.append(orjson.dumps({"events": [as_row(e) for e in built], "merges": []}))
            started, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(blobs), event_queue._BLOBS_PER_WRITE):
                await event_queue._write(blobs[start : start + event_queue._BLOBS_PER_WRITE])
            rates.append(events / (time.perf_counter() - started))
            cpu_us = (time.process_time() - cpu) / events * 1e6
            print(f"  round {r + 1}: {rates[-1]:,.0f} events/s ({cpu_us:.1f} µs of the writer's CPU per event)",
                  flush=True)
    finally:
        await db.close_db()
        configure(None)
    return rates


def _bodies(via: str, count: int, round_no: int) -> list[bytes]:
    now = datetime.now(UTC).isoformat()
    out = []
    for b in range(count):
        events = [{"eventId": f"r{round_no}-{b}-{i}-{uuid.uuid4().hex[:10]}", "kind": "PAGE_VISIT", "clientTime": now,
                   "path": "/home"} for i in range(BATCH)]
        body = {"events": events} if via == "events" else {"query": TRACK, "variables": {"input": {"events": events}}}
        out.append(orjson.dumps(body))
    return out


async def _probe(http: httpx.AsyncClient, seconds: float) -> list[float]:
    """{ __typename } one request at a time for ``seconds``; the latency of each."""
    out = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        response = await http.post("/graphql", json={"query": "{ __typename }"})
        out.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return out


async def _send(http: httpx.AsyncClient, via: str, body: bytes, client_no: int) -> None:
    headers = {"content-type": "application/json", "x-forwarded-for": f"198.18.1.{client_no % 250 + 1}"}
    answer = (await http.post("/events" if via == "events" else "/graphql", content=body, headers=headers)).json()
    accepted = answer.get("accepted") if via == "events" else answer["data"]["track"]["accepted"]
    assert accepted == BATCH, answer


async def _open_loop(url: str, via: str, bodies: list[bytes], interval: float) -> float:
    """Send ``bodies`` one every ``interval`` seconds, each on its own request whatever the
    previous ones are doing; returns the seconds from the first send to the last answer."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        started = time.perf_counter()
        tasks = []
        for n, body in enumerate(bodies):
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(http, via, body, n)))
        await asyncio.gather(*tasks)
        return time.perf_counter() - started


def _sender_main(url: str, via: str, rate: float, count: int, round_no: int) -> None:
    """The load generator's own process (so its CPU does not land on the probe's event loop):
    builds its bodies, says "ready", waits for a line on stdin, sends, prints the seconds taken."""
    bodies = _bodies(via, count, round_no)
    print("ready", flush=True)
    sys.stdin.readline()
    print(asyncio.run(_open_loop(url, via, bodies, BATCH / rate)), flush=True)


async def latency(dsn: str, namespace: str, data_dir: Path, rounds: int, seconds: float, rate: float,
                  via: str, server_cpu: int = -1, control: bool = False) -> tuple[list[float], list[float]]:
    import asyncpg

    port = 18000 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAMENG_", "DATABASE_URL", "REDIS_URL", "BROKER_URL"))}
    env.update({"DATABASE_URL": dsn, "REDIS_URL": REDIS, "BROKER_URL": REDIS, "KAMENG_NAMESPACE": namespace,
                "KAMENG_DATA_DIR": str(data_dir), "KAMENG_SECRET_KEY": uuid.uuid4().hex * 2,
                "KAMENG_FINGERPRINT_KEY": uuid.uuid4().hex, "KAMENG_INPROCESS_WORKER": "false",
                "KAMENG_LOG_LEVEL": "WARNING", "KAMENG_TRACK_LIMIT_PER_IP": "100000000/minute",
                "KAMENG_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    processes = [
        subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "service", "worker"], env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    if control:  # a second API process that takes the control rounds' load (never probed)
        processes.append(subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port + 1)], env=env,
                                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    if server_cpu >= 0 and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        # The API process alone on one CPU, everything else of the bench (the writer, the load
        # generator, this probe) on the others: what moves the API's latency is then its own
        # ingestion work, not the run's other processes (PostgreSQL's backends still float).
        others = set(range(os.cpu_count() or 2)) - {server_cpu}
        os.sched_setaffinity(processes[0].pid, {server_cpu})
        for process in processes[1:]:
            os.sched_setaffinity(process.pid, others)
        os.sched_setaffinity(0, others)
    url = f"http://127.0.0.1:{port}"
    control_url = f"http://127.0.0.1:{port + 1}"
    database = await asyncpg.connect(dsn.replace("postgres://", "postgresql://", 1))
    count = int(seconds * rate / BATCH)
    ratios: list[float] = []
    controls: list[float] = []

    async def sample(http: httpx.AsyncClient, target: str, r: int) -> tuple[float, str]:
        """Idle, then loaded with the load sent to ``target``: the ratio of the medians, and a line."""
        sender = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--send", target, via, str(rate), str(count), str(r), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert sender.stdin is not None and sender.stdout is not None
        assert (await sender.stdout.readline()).strip() == b"ready"
        before = await database.fetchval("SELECT count(*) FROM behaviour_event")
        idle = await _probe(http, seconds)
        sender.stdin.write(b"go\n")
        await sender.stdin.drain()
        loaded = await _probe(http, seconds)
        took = float((await sender.stdout.readline()).strip())
        await sender.wait()
        sent_at = time.perf_counter()
        expected = before + count * BATCH
        while await database.fetchval("SELECT count(*) FROM behaviour_event") < expected:
            if time.perf_counter() - sent_at > 60:
                raise AssertionError("events were not all written within 60 s")
            await asyncio.sleep(0.05)
        lag = time.perf_counter() - sent_at
        ratio = statistics.median(loaded) / statistics.median(idle)
        return ratio, (f"idle median {statistics.median(idle) * 1e3:.2f} ms p99 {p99(idle) * 1e3:.2f}; "
                       f"loaded median {statistics.median(loaded) * 1e3:.2f} ms p99 {p99(loaded) * 1e3:.2f}; "
                       f"ratio {ratio:.2f}; took {count * BATCH / took:,.0f} events/s "
                       f"(asked {rate:,.0f}); all {count * BATCH:,} written {lag:.2f} s after the last answer")

    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for base in (url, control_url) if control else (url,):
                for _ in range(600):
                    try:
                        if (await http.get(f"{base}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
            await _probe(http, 1.0)  # warm-up
            for r in range(rounds):
                ratio, line = await sample(http, url, r)
                ratios.append(ratio)
                print(f"  round {r + 1}: {line}", flush=True)
                if control:
                    ratio, line = await sample(http, control_url, r + rounds)
                    controls.append(ratio)
                    print(f"  round {r + 1}, control (the load on the other API process): {line}", flush=True)
    finally:
        await database.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    return ratios, controls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events written per throughput round")
    parser.add_argument("--batch", type=int, default=1000, help="events per queued blob (1,000, as API processes queue them)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5, help="length of each idle and each loaded sample")
    parser.add_argument("--rate", type=float, default=20_000, help="events/s the open-loop load sends")
    parser.add_argument("--server-cpu", type=int, default=-1,
                        help="pin the API process to this CPU and the rest of the bench to the others (default -1: no pinning; on 2 CPUs pinning starves the rest)")
    parser.add_argument("--control", action="store_true",
                        help="also send each round's load to a second API process: what the load costs the machine alone")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--via", choices=("graphql", "events", "both"), default="both",
                        help="how the load sends its batches: the track mutation, POST /events, or each in turn")
    args = parser.parse_args()

    import asyncpg

    namespace = f"bench_events_{uuid.uuid4().hex[:8]}"
    admin_url = PG.replace("postgres://", "postgresql://", 1)
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{namespace}"')
    await admin.close()
    dsn = f"{PG.rsplit('/', 1)[0]}/{namespace}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_throughput:
                print(f"write throughput ({args.events:,} events per round, batches of {args.batch:,}):")
                rates = await throughput(dsn, namespace, Path(tmp), args.events, args.batch, args.rounds)
                print(f"events/s per worker: {spread(rates)}")
            else:
                from kameng.settings import Settings
                from models import database as db

                await db.migrate(Settings(database_url=dsn, namespace=namespace, data_dir=Path(tmp),
                                          secret_key=uuid.uuid4().hex * 2))
            for via in ("graphql", "events") if args.via == "both" else (args.via,):
                if args.skip_latency:
                    break
                door = "POST /events" if via == "events" else "the track mutation"
                print(f"{{ __typename }} latency, idle vs ingesting {args.rate:,.0f} events/s in batches of {BATCH} "
                      f"through {door}:")
                ratios, controls = await latency(dsn, namespace, Path(tmp), args.rounds, args.seconds, args.rate, via,
                                                 args.server_cpu, args.control)
                print(f"latency ratio loaded/idle ({via}): {spread(ratios)}")
                if controls:
                    print(f"latency ratio loaded/idle ({via}), control: {spread(controls)}")
                    print(f"the API's own share, ratio over the same round's control ({via}): "
                          f"{spread([own / other for own, other in zip(ratios, controls, strict=True)])}")
    finally:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{namespace}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--send"]:
        _sender_main(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    else:
        asyncio.run(main())
