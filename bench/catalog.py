"""The storefront's catalog page, as buyers hit it, against a raw route serving the same bytes (issue 15).

    uv run python bench/catalog.py                       # SQLite, and PostgreSQL if reachable
    uv run python bench/catalog.py --databases sqlite --rounds 5 --seconds 5

Per database: a fresh database seeded with shops and products (card keys and stock limits),
then three uvicorn processes, one worker each, pinned to the first CPU (the load generator to
the others): the real app (`app:create_app`) with its response cache (*warm*: after the first
request every answer is a hit), the real app with `KAMENG_RESPONSE_CACHE=false` (*cold*: every
request runs the uncached path, GraphQL and SQL) and a raw Starlette route returning the same
bytes (*raw*). The request is the anonymous GET of

    { products(first: 20) { edges { node { id title price { amount currency } stock merchant { id name } } } } }

and every answer is checked byte for byte against the raw body. Rounds interleave the three
(raw, warm, cold; then reversed); each round gives the ratios warm/raw and cold/raw, and the
report prints their min, median and max. The load generator is bench/graphql_overhead.py's
(keep-alive HTTP/1.1 on raw asyncio sockets, 16 connections, one request in flight each).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.graphql_overhead import Sample, _Connection, _Run, _window  # noqa: E402

PAGE = "{ products(first: 20) { edges { node { id title price { amount currency } stock merchant { id name } } } } }"
PATH = "/graphql?" + urlencode({"query": PAGE})
PG_ADMIN = os.environ.get("KAMENG_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
ROUTES = ("raw", "warm", "cold")


# -- the servers ------------------------------------------------------------------------


def raw_app(body_file: str) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    body = Path(body_file).read_bytes()

    async def page(_: Any) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/graphql", page)])


def serve(fd: int, kind: str, body_file: str, cpu: int | None) -> None:
    import uvicorn

    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    if kind == "raw":
        app = raw_app(body_file)
    else:
        from app import create_app

        app = create_app()
    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on" if kind != "raw" else "off")
    uvicorn.Server(config).run(sockets=[sock])


def start(kind: str, env: dict[str, str], body_file: str, cpu: int | None) -> tuple[subprocess.Popen[bytes], int]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    port = listener.getsockname()[1]
    command = [sys.executable, str(Path(__file__).resolve()), "--_serve", str(listener.fileno()), kind, body_file]
    if cpu is not None:
        command += ["--server-cpu", str(cpu)]
    child = subprocess.Popen(command, pass_fds=(listener.fileno(),), cwd=ROOT, env=env)
    listener.close()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"the {kind} server exited with status {child.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if probe.recv(16).startswith(b"HTTP/1.1"):
                    return child, port
        except OSError:
            time.sleep(0.2)
    child.kill()
    raise SystemExit(f"the {kind} server did not answer within 90 s")


def stop(child: subprocess.Popen[bytes]) -> None:
    child.terminate()
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


# -- the data ---------------------------------------------------------------------------


async def seed(env: dict[str, str], products: int) -> None:
    """Shops and products as a storefront has them: most sold as card keys, some with a stock limit."""
    os.environ.update(env)
    from kameng.settings import Settings, configure
    from models import database as db
    from models.accounts.users import Role, User
    from models.commerce.catalog import DeliveryKind, Product
    from models.commerce.inventory import CardKey
    from models.commerce.merchants import Merchant

    settings = Settings()
    configure(settings)
    await db.migrate(settings)
    await db.init_db(settings)
    try:
        shops = []
        for n in range(5):
            owner = await User.create(email=f"shop{n}@bench.test", password_hash="-", nickname=f"Shop {n}",
                                      role=Role.MERCHANT)
            shops.append(await Merchant.create(owner=owner, name=f"数字卡铺 {n}"))
        for n in range(products):
            kind = DeliveryKind.CARD_KEY if n % 4 else DeliveryKind.DIRECT_TOPUP
            product = await Product.create(
                merchant=shops[n % len(shops)], title=f"Steam 充值卡 {n} 元", price=Decimal(10 + n) + Decimal("0.99"),
                delivery_kind=kind, stock_limit=None if kind == DeliveryKind.CARD_KEY else 50 + n,
                description="A card key, delivered at once.",
            )
            if kind == DeliveryKind.CARD_KEY:
                await CardKey.bulk_create([
                    CardKey(product=product, key_id="bench", ciphertext="x", fingerprint=uuid.uuid4().hex)
                    for _ in range(n % 7 + 1)
                ])
    finally:
        await db.close_db()


def environment(database: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
    env.update({
        "KAMENG_DATA_DIR": data_dir, "KAMENG_SECRET_KEY": secrets.token_hex(32), "KAMENG_KPAY_SECRET": "bench",
        "KAMENG_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}", "KAMENG_LOG_LEVEL": "WARNING",
        # One load generator address stands for many buyers: no per-client query budget
        # (the cost is still computed and checked against KAMENG_MAX_QUERY_COST).
        "KAMENG_QUERY_BUDGET": "0",
    })
    if database != "sqlite":
        env["DATABASE_URL"] = database
    return env


async def postgres(name: str, drop: bool = False) -> str | None:
    try:
        import asyncpg

        admin = await asyncpg.connect(PG_ADMIN.replace("postgres://", "postgresql://", 1), timeout=3)
    except Exception:
        return None
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if drop else f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


# -- measuring --------------------------------------------------------------------------


async def fetch(port: int) -> bytes:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get(PATH, headers={"accept": "application/json"})
    response.raise_for_status()
    return response.content


async def measure(port: int, pid: int, expected: bytes, args: argparse.Namespace, route: str) -> Sample:
    request = (f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kameng-bench\r\n"
               "Accept: application/json\r\n\r\n").encode()
    run = _Run(request=request, expected=expected)
    loop = asyncio.get_running_loop()
    done = [loop.create_future() for _ in range(args.concurrency)]
    for future in done:
        await loop.create_connection(lambda f=future: _Connection(run, f), "127.0.0.1", port)
    await asyncio.sleep(args.warmup)
    sample = await _window(run, args.seconds, pid, route, done)
    if run.errors:
        raise SystemExit(f"{route}: {run.errors} wrong answers, first: {run.first_error}")
    return sample


async def bench(database: str, args: argparse.Namespace) -> dict[str, list[float]]:
    label = "SQLite" if database == "sqlite" else "PostgreSQL"
    pg_name = f"kameng_bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="kameng-bench-") as tmp:
        url = "sqlite"
        if database == "postgres":
            url = await postgres(pg_name) or ""
            if not url:
                print(f"{label}: not reachable at {PG_ADMIN}, skipped")
                return {}
        env = environment(url, tmp)
        children: list[subprocess.Popen[bytes]] = []
        try:
            # In a child process: Tortoise keeps per-model SQL of the first database it met.
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_seed", str(args.products)],
                           env=env, cwd=ROOT, check=True)
            body_file = str(Path(tmp) / "page.json")
            cpu = 0 if (os.cpu_count() or 1) > 1 else None
            if cpu is not None:
                os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
            servers: dict[str, tuple[int, int]] = {}
            for route, extra in (("warm", {}), ("cold", {"KAMENG_RESPONSE_CACHE": "false"})):
                child, port = start(route, {**env, **extra}, body_file, cpu)
                children.append(child)
                servers[route] = (port, child.pid)
            body = await fetch(servers["cold"][0])
            Path(body_file).write_bytes(body)
            if await fetch(servers["warm"][0]) != body:
                raise SystemExit("the warm server answered other bytes than the cold one")
            child, port = start("raw", env, body_file, cpu)
            children.append(child)
            servers["raw"] = (port, child.pid)
            print(f"{label}: {len(body)} bytes per page; {args.rounds} rounds of {args.seconds:g} s per route")
            rates: dict[str, list[float]] = {route: [] for route in ROUTES}
            cpu_us: dict[str, list[float]] = {route: [] for route in ROUTES}
            for n in range(args.rounds):
                for route in ROUTES if n % 2 == 0 else tuple(reversed(ROUTES)):
                    port, pid = servers[route]
                    sample = await measure(port, pid, body, args, route)
                    rates[route].append(sample.rps)
                    cpu_note = ""
                    if sample.server_cpu is not None:
                        cpu_us[route].append(sample.server_cpu / sample.rps * 1e6)
                        cpu_note = f"server {sample.server_cpu * 100:4.0f}% CPU, {cpu_us[route][-1]:7.0f} µs CPU/req"
                    print(f"  round {n + 1} {route:>4}: {sample.rps:9.1f} req/s  {cpu_note}")
        finally:
            for child in children:
                stop(child)
            if database == "postgres":
                await postgres(pg_name, drop=True)
    ratios = {
        f"{route}/raw": [rates[route][n] / rates["raw"][n] for n in range(args.rounds)] for route in ("warm", "cold")
    }
    for name, values in ratios.items():
        median_rps = statistics.median(rates[name.split("/")[0]])
        print(f"{label} {name:>9}: median {statistics.median(values):.3f} (min {min(values):.3f}, "
              f"max {max(values):.3f}); {median_rps:.0f} req/s median")
        route = name.split("/")[0]
        if len(cpu_us[route]) == len(cpu_us["raw"]) == args.rounds:
            by_cpu = [cpu_us["raw"][n] / cpu_us[route][n] for n in range(args.rounds)]
            print(f"{label} {name:>9} by server CPU per request: median {statistics.median(by_cpu):.3f} "
                  f"(min {min(by_cpu):.3f}, max {max(by_cpu):.3f})")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite, postgres or both (comma-separated)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--products", type=int, default=60)
    parser.add_argument("--require-warm", type=float, default=None, help="exit 1 if a median warm/raw is below")
    parser.add_argument("--require-cold", type=float, default=None, help="exit 1 if a median cold/raw is below")
    parser.add_argument("--_serve", nargs=3, metavar=("FD", "KIND", "BODY"), help=argparse.SUPPRESS)
    parser.add_argument("--server-cpu", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_seed", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._seed is not None:
        asyncio.run(seed(dict(os.environ), args._seed))
        return 0
    if args._serve:
        fd, kind, body_file = args._serve
        serve(int(fd), kind, body_file, args.server_cpu)
        return 0
    failed = False
    for database in args.databases.split(","):
        ratios = asyncio.run(bench(database.strip(), args))
        for name, floor in (("warm/raw", args.require_warm), ("cold/raw", args.require_cold)):
            if floor is not None and ratios and statistics.median(ratios[name]) < floor:
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
