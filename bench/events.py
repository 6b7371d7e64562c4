"""Behaviour-event ingestion on PostgreSQL (issue 11 item 1).

Two figures:

1. **Write throughput per worker**: one process, one flusher, on a fresh database: events
   built in memory as the ``track`` use case buffers them, then written with
   ``tracking.write_batch`` (COPY into a temporary table + INSERT ... ON CONFLICT DO NOTHING),
   in batches of ``--batch`` events. Events/s over ``--rounds`` rounds (min/median/max);
   only the writes are timed.
2. **The API's latency under ingestion**: ``kameng serve`` (one uvicorn process, PostgreSQL +
   Redis) answers ``{ __typename }`` one request at a time; in interleaved rounds the same
   measurement runs idle and while ``--clients`` other connections send batches of 500
   events as fast as they are answered, through ``--via graphql`` (the ``track`` mutation) or
   ``--via events`` (``POST /events``, service/web/events.py; ``--via both`` runs each). Per
   round: the median latency of each, and the ratio loaded/idle (1.0 = unchanged);
   min/median/max of the ratios over rounds.

    uv run python bench/events.py                     # needs PostgreSQL and Redis on localhost
    uv run python bench/events.py --rounds 7 --events 200000
    uv run python bench/events.py --skip-throughput --via both
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

PG = os.environ.get("KAMENG_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("KAMENG_BENCH_REDIS", "redis://127.0.0.1:6379/0")
TRACK = "mutation($input: TrackInput!) { track(input: $input) { errors { code } accepted } }"


def spread(values: list[float]) -> str:
    return f"min {min(values):,.3f}  median {statistics.median(values):,.3f}  max {max(values):,.3f}"


async def throughput(dsn: str, namespace: str, data_dir: Path, events: int, batch: int, rounds: int) -> list[float]:
    from kameng.settings import Settings, configure
    from models import database as db
    from models.discovery.events import EventKind
    from resolvers.discovery.tracking import TrackedEvent, write_batch

    settings = Settings(database_url=dsn, namespace=namespace, data_dir=data_dir, secret_key=uuid.uuid4().hex * 2)
    configure(settings)
    await db.migrate(settings)
    await db.init_db(settings)
    rates = []
    try:
        for r in range(rounds):
            now = datetime.now(UTC)
            built = [
                TrackedEvent(event_id=f"b{r}-{i}-{uuid.uuid4().hex[:12]}", kind=EventKind.PRODUCT_VIEW,
                             device_id=f"device-{i % 5000:05d}", product_id=i % 997 + 1, surface="HOME",
                             client_time=now, occurred_at=now)
                for i in range(events)
            ]
            started = time.perf_counter()
            for start in range(0, events, batch):
                await write_batch(built[start : start + batch])
            rates.append(events / (time.perf_counter() - started))
            print(f"  round {r + 1}: {rates[-1]:,.0f} events/s", flush=True)
    finally:
        await db.close_db()
        configure(None)
    return rates


async def _latencies(http: httpx.AsyncClient, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = await http.post("/graphql", json={"query": "{ __typename }"})
        out.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return out


async def _load(url: str, stop: asyncio.Event, sent: list[int], client_no: int, via: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"x-forwarded-for": f"198.18.1.{client_no}"}) as http:
        while not stop.is_set():
            now = datetime.now(UTC).isoformat()
            events = [{"eventId": uuid.uuid4().hex, "kind": "PAGE_VISIT", "clientTime": now, "path": "/home"}
                      for _ in range(500)]
            if via == "events":
                body = (await http.post("/events", json={"events": events})).json()
                assert body.get("accepted") == 500, body
            else:
                body = (await http.post("/graphql", json={"query": TRACK, "variables": {"input": {"events": events}}})).json()
                assert body["data"]["track"]["accepted"] == 500, body
            sent[0] += 500


async def latency(dsn: str, namespace: str, data_dir: Path, rounds: int, requests: int, clients: int,
                  via: str = "graphql") -> list[float]:
    port = 18000 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAMENG_", "DATABASE_URL", "REDIS_URL", "BROKER_URL"))}
    env.update({"DATABASE_URL": dsn, "REDIS_URL": REDIS, "BROKER_URL": REDIS, "KAMENG_NAMESPACE": namespace,
                "KAMENG_DATA_DIR": str(data_dir), "KAMENG_SECRET_KEY": uuid.uuid4().hex * 2,
                "KAMENG_FINGERPRINT_KEY": uuid.uuid4().hex, "KAMENG_INPROCESS_WORKER": "false",
                "KAMENG_LOG_LEVEL": "WARNING", "KAMENG_TRACK_LIMIT_PER_IP": "100000000/minute",
                "KAMENG_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    server = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    ratios = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for _ in range(600):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            await _latencies(http, 50)  # warm-up
            for r in range(rounds):
                idle = statistics.median(await _latencies(http, requests))
                stop, sent = asyncio.Event(), [0]
                loaders = [asyncio.create_task(_load(url, stop, sent, c + 1, via)) for c in range(clients)]
                await asyncio.sleep(0.5)
                started = time.perf_counter()
                loaded = statistics.median(await _latencies(http, requests))
                rate = sent[0] / (time.perf_counter() - started + 0.5)
                stop.set()
                await asyncio.gather(*loaders)
                ratios.append(loaded / idle)
                print(f"  round {r + 1}: idle {idle * 1e3:.2f} ms, under ~{rate:,.0f} tracked events/s "
                      f"{loaded * 1e3:.2f} ms, ratio {ratios[-1]:.2f}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return ratios


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events written per throughput round")
    parser.add_argument("--batch", type=int, default=5000, help="events per write (the flush batch)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="{ __typename } requests per latency sample")
    parser.add_argument("--clients", type=int, default=4, help="connections sending track batches meanwhile")
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
                print(f"{{ __typename }} latency, idle vs {args.clients} connections sending batches of 500 "
                      f"through {door}:")
                ratios = await latency(dsn, namespace, Path(tmp), args.rounds, args.requests, args.clients, via)
                print(f"latency ratio loaded/idle ({via}): {spread(ratios)}")
    finally:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{namespace}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
