"""Community feed benchmarks (issue 4), bounded and self-cleaning.

(a) ``following``: the FOLLOWING feed (20 posts with author, product card with its merchant,
    like state and comment count) through the real schema, in this process, for a reader
    following 500 accounts: SQL statements per request (must not depend on the page size)
    and p50/p99 latency from the database and from the Redis fan-out cache, in the same run.
(b) ``fanout``: one post fanned out to N (default 100,000) active followers with built feeds
    (``resolvers.community.fanout.fan_out``: keyset batches of 1,000 followers, one pipeline of
    conditional adds each), in feed inserts per second, against a plain pipelined ZADD of the
    same N keys in batches of 1,000 (the ceiling) in the same run.
(c) ``live``: Kameng's uvicorn server (service.cli.server_options, ``--ws-options`` on top) in
    a child process, N (default 10,000) graphql-transport-ws subscribers to ``liveFeed`` from
    this process, one post published with ``createPost``: every subscriber must receive it;
    p50/p99 delivery latency (from the mutation's send) and the server's RSS growth per
    connection; then the same against a bare WebSocket + Redis fan-out (bench/ws_baseline.py,
    same uvicorn options, one PUBLISH), in ``--live-rounds`` interleaved rounds.

Own temporary data directory (SQLite) or scratch PostgreSQL database (``BENCH_DATABASE_URL``,
an admin URL), own Redis namespace on ``BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/0),
only 127.0.0.1; everything is dropped afterwards.

    uv run python bench/feeds.py
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres uv run python bench/feeds.py
    uv run python bench/feeds.py --only live --subscribers 1000      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN = os.environ.get("BENCH_DATABASE_URL")

FEED_QUERY = """query($first: Int) { feed(kind: FOLLOWING, first: $first) { edges { cursor node {
  id title likeCount commentCount viewerHasLiked author { id nickname }
  product { id title price { amount currency } merchant { id name } } } } pageInfo { hasNextPage endCursor } } }"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def scratch_database(data_dir: Path) -> AsyncIterator[str | None]:
    if not PG_ADMIN:
        yield None
        return
    from tests.conftest import postgres_database

    async with postgres_database(PG_ADMIN, f"kbench{uuid.uuid4().hex[:10]}") as dsn:
        yield dsn


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if '"outbox"' not in text and "pg_advisory" not in text:
            self.count += 1


@contextlib.contextmanager
def counting() -> Any:
    logger = logging.getLogger("tortoise.db_client")
    counter = Counter()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)


# -- in-process setup -------------------------------------------------------------------


async def start_runtime(data_dir: Path, database_url: str | None, namespace: str) -> Any:
    from kameng import crypto
    from models import database as db
    from service import wiring
    from kameng.settings import Settings, configure

    settings = Settings(
        data_dir=data_dir, database_url=database_url, redis_url=REDIS_URL, broker_url=None,
        namespace=namespace, secret_key=uuid.uuid4().hex * 2, log_level="WARNING", inprocess_worker=False,
    )
    configure(settings)
    crypto.reset()
    await db.migrate(settings)
    return await wiring.start(settings, run_worker=False, sweeps=False)


async def make_users(count: int, prefix: str) -> list[int]:
    from models.accounts.users import User
    from tests.factories import password_hash

    hashed = password_hash()
    ids: list[int] = []
    for start in range(0, count, 5000):
        rows = [User(email=f"{prefix}{i}@bench.invalid", nickname=f"u{i}", password_hash=hashed)
                for i in range(start, min(count, start + 5000))]
        await User.bulk_create(rows)
        ids += list(await User.filter(email__in=[r.email for r in rows]).order_by("id").values_list("id", flat=True))
    return ids


async def bench_following(args: argparse.Namespace) -> dict[str, Any]:
    from models.community.follows import Follow, FollowKind
    from models.community.posts import Post, PostKind
    from resolvers.community import feeds
    from resolvers.accounts.auth import Actor
    from schema import build_schema
    from schema.context import Context
    from tests.factories import make_product

    authors = await make_users(args.following, f"a{uuid.uuid4().hex[:6]}-")
    (reader_id,) = await make_users(1, f"r{uuid.uuid4().hex[:6]}-")
    await Follow.bulk_create([Follow(follower_id=reader_id, kind=FollowKind.USER, target_id=a) for a in authors])
    products = [await make_product() for _ in range(10)]
    posts = [
        Post(author_id=authors[i % len(authors)], kind=PostKind.GUIDE, title=f"post {i}", body="b",
             body_html="<p>b</p>", product_id=products[i % 10].id, comment_count=i % 7, like_count=i % 5)
        for i in range(args.following * args.posts_per_author)
    ]
    for start in range(0, len(posts), 2000):
        await Post.bulk_create(posts[start:start + 2000])
    from models.accounts.users import User

    reader = await User.get(id=reader_id)
    schema = build_schema()
    results: dict[str, Any] = {"following": len(authors), "posts": len(posts)}

    async def run(first: int) -> tuple[float, int, Any]:
        context = Context(request=None, response=None, actor=Actor(user=reader))  # type: ignore[arg-type]
        with counting() as counter:
            started = time.perf_counter()
            result = await schema.execute(FEED_QUERY, variable_values={"first": first}, context_value=context)
            elapsed = time.perf_counter() - started
        assert not result.errors, result.errors
        return elapsed, counter.count, result.data

    original = feeds.current_store
    try:
        for label, store in (("database", lambda: None), ("redis", original)):
            feeds.current_store = store  # type: ignore[assignment]
            for _ in range(5):  # warm up (and, for Redis, build the reader's feed)
                await run(20)
            counts = {first: (await run(first))[1] for first in (1, 5, 20)}
            _, _, data = await run(20)
            assert len(data["feed"]["edges"]) == 20
            latencies = [(await run(20))[0] for _ in range(args.requests)]
            # The page alone (feed resolver, no GraphQL fields): where the two paths differ.
            page_only = []
            for _ in range(args.requests):
                started = time.perf_counter()
                await feeds.feed(Actor(user=reader), feeds.FeedKind.FOLLOWING, first=20)
                page_only.append(time.perf_counter() - started)
            results[label] = {
                "page_only_p50_ms": round(pct(page_only, 50) * 1000, 2),
                "page_only_p99_ms": round(pct(page_only, 99) * 1000, 2),
                "queries_by_page_size": counts,
                "p50_ms": round(pct(latencies, 50) * 1000, 2),
                "p99_ms": round(pct(latencies, 99) * 1000, 2),
            }
    finally:
        feeds.current_store = original  # type: ignore[assignment]
    results["p99_ratio_db_over_redis"] = round(results["database"]["p99_ms"] / results["redis"]["p99_ms"], 2)
    return results


async def bench_fanout(args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    from models.community.follows import Follow, FollowKind
    from models.community.posts import Post, PostKind
    from resolvers.community import fanout

    store = fanout.current_store()
    assert store is not None
    redis = store.redis
    (author,) = await make_users(1, f"w{uuid.uuid4().hex[:6]}-")
    started = time.perf_counter()
    followers = await make_users(args.followers, f"f{uuid.uuid4().hex[:6]}-")
    for start in range(0, len(followers), 5000):
        await Follow.bulk_create([Follow(follower_id=f, kind=FollowKind.USER, target_id=author)
                                  for f in followers[start:start + 5000]])
    setup = time.perf_counter() - started
    # Every follower has a built (empty) feed, as an active user who has read it would.
    for start in range(0, len(followers), 5000):
        pipe = redis.pipeline(transaction=False)
        for f in followers[start:start + 5000]:
            pipe.zadd(store.key(f), {"0": 0})
        await pipe.execute()
    # Interleaved rounds: each round fans a new post out, then runs the baseline (a plain
    # pipelined ZADD of the same N keys in batches of 1,000), so load on a shared machine
    # hits both alike; the ratio is reported per round (min/median/max).
    rounds: list[dict[str, float]] = []
    for round_no in range(args.rounds):
        post = await Post.create(author_id=author, kind=PostKind.GUIDE, title=f"big {round_no}", body="b", body_html="b")
        started = time.perf_counter()
        written = await fanout.fan_out(store, post.id)
        fan_out_s = time.perf_counter() - started
        assert written == len(followers), (written, len(followers))
        started = time.perf_counter()
        for start in range(0, len(followers), fanout.FANOUT_BATCH):
            pipe = redis.pipeline(transaction=False)
            for f in followers[start:start + fanout.FANOUT_BATCH]:
                pipe.zadd(f"{namespace}:baseline:{f}", {str(post.id): post.id})
            await pipe.execute()
        baseline_s = time.perf_counter() - started
        rounds.append({"fan_out_s": fan_out_s, "baseline_s": baseline_s, "ratio": baseline_s / fan_out_s})
    ratios = sorted(r["ratio"] for r in rounds)
    median = rounds[[r["ratio"] for r in rounds].index(ratios[len(ratios) // 2])]
    return {
        "followers": len(followers),
        "setup_s": round(setup, 1),
        "rounds": len(rounds),
        "fan_out_s_median_round": round(median["fan_out_s"], 2),
        "fan_out_inserts_per_s": round(len(followers) / median["fan_out_s"]),
        "baseline_zadd_per_s": round(len(followers) / median["baseline_s"]),
        "ratio_to_baseline": {"min": round(ratios[0], 2), "median": round(ratios[len(ratios) // 2], 2),
                              "max": round(ratios[-1], 2)},
    }


# -- (c) live feed over WebSocket ---------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


KAMENG_SERVER = (
    "import json, sys, uvicorn\n"
    "from service.cli import _settings, server_options\n"
    "port, overrides = int(sys.argv[1]), json.loads(sys.argv[2])\n"
    "uvicorn.run('app:create_app', factory=True, host='127.0.0.1', port=port,\n"
    "            **{**server_options(_settings()), **overrides})\n"
)
LIVE_SUBSCRIPTION = "subscription { liveFeed { id title } }"


async def live_round(args: argparse.Namespace, label: str, command: list[str], env: dict[str, str],
                     port: int, publish: Any) -> dict[str, Any]:
    """Start a server, open ``--subscribers`` graphql-transport-ws subscriptions, publish one
    post (``publish(http)`` returns when sent), time every arrival; RSS growth per socket."""
    import httpx
    import websockets

    log = (Path(env["KAMENG_DATA_DIR"]).parent / f"{label}.log").open("ab")
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    sockets: list[Any] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                if server.poll() is not None:
                    raise SystemExit(f"the {label} server exited: {log.name}")
                await asyncio.sleep(0.2)
            prepared = await publish.prepare(http)
            await asyncio.sleep(1.0)
            rss_before = rss_kib(server.pid)
            subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": LIVE_SUBSCRIPTION}})

            async def open_one() -> Any:
                ws = await websockets.connect(url.replace("http", "ws") + "/graphql", subprotocols=["graphql-transport-ws"],
                                              ping_interval=None, max_queue=4, compression=None if args.no_client_deflate else "deflate")
                await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                await ws.send(subscribe)
                return ws

            started = time.perf_counter()
            for start in range(0, args.subscribers, 200):
                sockets += await asyncio.gather(*(open_one() for _ in range(start, min(args.subscribers, start + 200))))
            connect_s = time.perf_counter() - started
            await asyncio.sleep(3.0)  # every subscription listening, the heap settled
            rss_after = rss_kib(server.pid)
            arrivals: list[float] = []

            async def wait_one(ws: Any) -> None:
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] == "next":
                        arrivals.append(time.perf_counter())
                        return

            waiting = [asyncio.create_task(wait_one(ws)) for ws in sockets]
            await asyncio.sleep(0.2)
            sent = time.perf_counter()
            await publish.send(http, prepared)
            done, pending = await asyncio.wait(waiting, timeout=args.live_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            latencies = [a - sent for a in arrivals]
            return {
                "server": label,
                "subscribers": len(sockets),
                "received": len(arrivals),
                "connect_s": round(connect_s, 1),
                "p50_ms": round(pct(latencies, 50) * 1000, 1) if latencies else None,
                "p99_ms": round(pct(latencies, 99) * 1000, 1) if latencies else None,
                "min_ms": round(min(latencies) * 1000, 1) if latencies else None,
                "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
                "spread_p99_minus_min_ms": round((pct(latencies, 99) - min(latencies)) * 1000, 1) if latencies else None,
                "server_rss_before_mib": round(rss_before / 1024, 1),
                "server_rss_after_mib": round(rss_after / 1024, 1),
                "kib_per_connection": round((rss_after - rss_before) / max(1, len(sockets)), 1),
            }
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        log.close()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class KamengPost:
    """Register a poster, then ``createPost`` over HTTP (the real path: outbox, bus, group)."""

    async def prepare(self, http: Any) -> str:
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        body = (await http.post("/graphql", json={"query": "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
                                                  "variables": {"i": {"email": email, "password": "correct horse battery", "nickname": "Poster"}}})).json()
        assert body.get("data") and body["data"]["register"]["accessToken"], body
        return body["data"]["register"]["accessToken"]

    async def send(self, http: Any, token: str) -> None:
        created = (await http.post("/graphql", headers={"authorization": f"Bearer {token}"}, json={
            "query": "mutation($i: CreatePostInput!) { createPost(input: $i) { errors { code message } post { id } } }",
            "variables": {"i": {"kind": "GUIDE", "title": "Live!", "body": "Hello, live feed."}}})).json()
        assert not created["data"]["createPost"]["errors"], created


class RedisPublish:
    """The baseline's event: one PUBLISH of the payload a Kameng subscriber receives."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def prepare(self, http: Any) -> None:
        return None

    async def send(self, http: Any, _: None) -> None:
        from redis.asyncio import Redis

        redis = Redis.from_url(REDIS_URL)
        try:
            await redis.publish(self.channel, json.dumps({"data": {"liveFeed": {"id": "UG9zdDox", "title": "Live!"}}}))
        finally:
            await redis.aclose()


async def bench_live(args: argparse.Namespace, data_dir: Path, database_url: str | None, namespace: str) -> dict[str, Any]:
    """Interleaved rounds: Kameng, then the bare baseline (bench/ws_baseline.py), with the
    same uvicorn options (``--ws-options``, JSON, over service.cli.server_options)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAMENG_", "DATABASE_URL", "REDIS_URL", "BROKER_URL"))}
    env.update({
        "KAMENG_DATA_DIR": str(data_dir / "live"), "KAMENG_NAMESPACE": f"{namespace}l",
        "KAMENG_SECRET_KEY": uuid.uuid4().hex * 2, "KAMENG_LOG_LEVEL": "WARNING",
        "KAMENG_REGISTER_LIMIT_PER_IP": "1000/minute", "REDIS_URL": REDIS_URL,
    })
    if database_url:
        env["DATABASE_URL"] = database_url
    rounds: list[dict[str, Any]] = []
    for round_no in range(args.live_rounds):
        port = free_port()
        kameng = await live_round(args, "kameng", [sys.executable, "-c", KAMENG_SERVER, str(port), args.ws_options],
                                  env, port, KamengPost())
        print(json.dumps({"live_round": round_no, **kameng}), flush=True)
        port = free_port()
        channel = f"{namespace}:baseline:{round_no}"
        bare = await live_round(args, "baseline", [sys.executable, str(ROOT / "bench" / "ws_baseline.py"), str(port), REDIS_URL,
                                                    channel, args.ws_options], env, port, RedisPublish(channel))
        print(json.dumps({"live_round": round_no, **bare}), flush=True)
        rounds.append({"kameng": kameng, "baseline": bare,
                       "p99_ratio": round(kameng["p99_ms"] / bare["p99_ms"], 2) if kameng["p99_ms"] and bare["p99_ms"] else None})
    return {"ws_options": json.loads(args.ws_options), "rounds": rounds}


async def main(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    namespace = f"kbench{uuid.uuid4().hex[:10]}"
    from tests.conftest import drop_redis_namespace

    report: dict[str, Any] = {"database": "postgresql" if PG_ADMIN else "sqlite", "redis": REDIS_URL}
    with tempfile.TemporaryDirectory(prefix="kameng-bench-") as tmp:
        data_dir = Path(tmp)
        try:
            async with scratch_database(data_dir) as dsn:
                from service import wiring

                await start_runtime(data_dir, dsn, namespace)
                try:
                    if args.only in (None, "following"):
                        report["following"] = await asyncio.wait_for(bench_following(args), args.phase_timeout)
                        print(json.dumps({"following": report["following"]}), flush=True)
                    if args.only in (None, "fanout"):
                        report["fanout"] = await asyncio.wait_for(bench_fanout(args, namespace), args.phase_timeout)
                        print(json.dumps({"fanout": report["fanout"]}), flush=True)
                finally:
                    await wiring.stop()
                if args.only in (None, "live"):
                    live_db = None
                    if dsn is not None:  # the server gets a database of its own
                        from tests.conftest import postgres_database

                        async with postgres_database(PG_ADMIN, f"kbenchl{uuid.uuid4().hex[:8]}") as live_dsn:
                            env_dsn = live_dsn
                            subprocess.run([sys.executable, "-m", "service", "migrate"], cwd=ROOT, check=True, timeout=300,
                                           env={**os.environ, "DATABASE_URL": env_dsn, "KAMENG_DATA_DIR": str(data_dir / "live")},
                                           capture_output=True)
                            report["live"] = await asyncio.wait_for(bench_live(args, data_dir, env_dsn, namespace), args.phase_timeout)
                    else:
                        report["live"] = await asyncio.wait_for(bench_live(args, data_dir, live_db, namespace), args.phase_timeout)
                    print(json.dumps({"live": report["live"]}), flush=True)
        finally:
            await drop_redis_namespace(REDIS_URL, namespace)
            await drop_redis_namespace(REDIS_URL, f"{namespace}l")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["following", "fanout", "live"])
    parser.add_argument("--following", type=int, default=500, help="accounts the reader follows")
    parser.add_argument("--posts-per-author", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300, help="timed feed requests per path")
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved fan-out/baseline rounds")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--live-timeout", type=float, default=30.0)
    parser.add_argument("--live-rounds", type=int, default=1, help="interleaved Kameng/baseline rounds")
    parser.add_argument("--ws-options", default="{}", help='uvicorn overrides, JSON, e.g. \'{"ws": "websockets-sansio"}\'')
    parser.add_argument("--no-client-deflate", action="store_true", help="clients do not offer permessage-deflate")
    parser.add_argument("--phase-timeout", type=float, default=900.0)
    asyncio.run(main(parser.parse_args()))
