"""Card-key import throughput, and whether the API stays responsive meanwhile (issue 3).

For each backend -- the embedded default (SQLite file), and PostgreSQL when
``BENCH_DATABASE_URL`` (an admin URL; a scratch database is created on that server and
dropped afterwards) is set -- in a fresh temporary data directory:

1. start the real API (``kameng serve``) as a child process and set up a merchant, the
   CARD_KEY product to import into (the oldest product) and 30 newer products;
2. measure the probe requests for ``--probe-seconds`` with no import running (baseline);
3. run ``kameng keys import FILE --product ID`` -- the command line's own code path, in its
   own process, in transactions of 1,000 keys -- on a file of ``--keys`` keys while the
   same probes keep running (during: the requests sent while the command was importing,
   by its own clock, so not its interpreter's start-up), then once more on the same file
   (all duplicates);
4. report keys/second and the probes' p50/p99 latency during vs baseline (the ratio).

The probes are closed loops (each sends its next request when the previous one answered),
``--concurrency`` of each kind at once:

* ``typename``  ``{ __typename }``: the event loop of the API process;
* ``products``  the first page of 20 products with merchant, stock and rating (reads; the
                imported product is not on it, so its growing key count is not measured);
* ``write``     ``updateProduct`` of another product (on SQLite every write needs the one
                write lock, which the import's transactions take 100 times).

    uv run python bench/key_import.py
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres uv run python bench/key_import.py
    uv run python bench/key_import.py --keys 20000 --probe-seconds 3    # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

PROBES = {
    "typename": ("{ __typename }", None),
    "products": (
        "{ products(first: 20) { edges { node { id title price { amount } stock rating reviewCount "
        "merchant { id name } } } } }",
        None,
    ),
    "write": (
        "mutation($input: UpdateProductInput!) { updateProduct(input: $input) { errors { code } product { id } } }",
        "write",
    ),
}
CLI_RESULT = re.compile(r"imported (\d+), duplicates (\d+), blank (\d+) in ([\d.]+) s \((\d+) keys/s\)")


# -- the environment: a data dir, maybe a scratch PostgreSQL database, the API process ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def scratch_postgres(admin_url: str) -> AsyncIterator[str]:
    import asyncpg

    name = f"kameng_bench_{uuid.uuid4().hex[:10]}"
    dsn = admin_url.replace("postgres://", "postgresql://", 1)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def child_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KAMENG_") and k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "BENCH_DATABASE_URL")}  # fmt: skip
    env.update(
        KAMENG_DATA_DIR=str(data_dir),
        KAMENG_SECRET_KEY=secrets.token_urlsafe(48),
        KAMENG_LOG_LEVEL="WARNING",
        KAMENG_REGISTER_LIMIT_PER_IP="1000/minute",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def kameng(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@contextlib.asynccontextmanager
async def api_server(env: dict[str, str], log: Path) -> AsyncIterator[str]:
    """``kameng serve`` on a free port; its log goes to ``log`` (shown if anything fails)."""
    port = free_port()
    with log.open("ab") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=ROOT, env=env,
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def failed(reason: str) -> SystemExit:
        return SystemExit(f"{reason}; the API's log:\n{log.read_text()[-3000:]}")

    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as http:
            deadline = time.monotonic() + 60
            while True:
                if child.poll() is not None:
                    raise failed(f"the API exited with status {child.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise failed("the API did not start within 60 s")
                await asyncio.sleep(0.1)
        try:
            yield url
        except httpx.TransportError as exc:
            state = "running" if child.poll() is None else f"exited with status {child.returncode}"
            raise failed(f"lost the API ({type(exc).__name__}; it {state})") from exc
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# -- set-up through the API -------------------------------------------------------------


async def gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = (await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)).json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL error: {body['errors']}")
    return body["data"]


@dataclass
class Shop:
    token: str
    import_product: str  # global ID
    import_product_pk: int
    write_product: str


async def set_up(url: str, env: dict[str, str]) -> Shop:
    email, password = f"bench-{uuid.uuid4().hex[:8]}@example.com", "bench password 123"
    made = kameng(env, "createuser", "--email", email, "--password", password, "--role", "merchant")
    if made.returncode != 0:
        raise SystemExit(f"createuser failed: {made.stderr}")
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        login = await gql(http, "mutation($i: LoginInput!) { login(input: $i) { errors { code } accessToken } }",
                          {"i": {"email": email, "password": password}})  # fmt: skip
        token = login["login"]["accessToken"]
        shop = await gql(http, "mutation($i: CreateMerchantInput!) { createMerchant(input: $i) { errors { code } merchant { id } } }",
                         {"i": {"name": f"Bench shop {uuid.uuid4().hex[:6]}"}}, token)  # fmt: skip
        merchant_id = shop["createMerchant"]["merchant"]["id"]
        create = "mutation($i: CreateProductInput!) { createProduct(input: $i) { errors { code } product { id } } }"
        ids = []
        for n in range(31):  # the first one (oldest) receives the keys
            kind = "CARD_KEY" if n % 2 == 0 else "MANUAL"
            made_product = await gql(http, create, {"i": {"merchantId": merchant_id, "title": f"Bench product {n}",
                                                          "price": f"{n + 1}.00", "deliveryKind": kind}}, token)  # fmt: skip
            ids.append(made_product["createProduct"]["product"]["id"])
    from strawberry.relay import GlobalID

    return Shop(token, ids[0], int(GlobalID.from_id(ids[0]).node_id), ids[-1])


# -- probes -----------------------------------------------------------------------------


@dataclass
class Latencies:
    #: (sent at, seconds) per probe kind; ``time.perf_counter()`` clock.
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {name: [] for name in PROBES})
    errors: int = 0

    def between(self, start: float, end: float) -> Latencies:
        """Only the requests sent in [start, end)."""
        kept = {name: [(t, s) for t, s in rows if start <= t < end] for name, rows in self.samples.items()}
        return Latencies(kept, self.errors)

    def seconds(self, name: str) -> list[float]:
        return [s for _, s in self.samples[name]]


async def probe(url: str, shop: Shop, stop: asyncio.Event, concurrency: int) -> Latencies:
    result = Latencies()
    limits = httpx.Limits(max_connections=concurrency * len(PROBES) + 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def loop(name: str, worker: int) -> None:
            query, kind = PROBES[name]
            headers = {"authorization": f"Bearer {shop.token}"} if kind == "write" else {}
            n = 0
            while not stop.is_set():
                n += 1
                variables = {"input": {"id": shop.write_product, "title": f"Bench {worker}-{n}"}} if kind == "write" else {}
                started = time.perf_counter()
                response = await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
                elapsed = time.perf_counter() - started
                body = response.json()
                if response.status_code != 200 or body.get("errors") or (kind == "write" and body["data"]["updateProduct"]["errors"]):
                    result.errors += 1
                result.samples[name].append((started, elapsed))

        await asyncio.gather(*(loop(name, w) for name in PROBES for w in range(concurrency)))
    return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- one backend ------------------------------------------------------------------------


@dataclass
class Report:
    backend: str
    keys: int
    import_wall: float
    cli: tuple[int, int, int, float, int]  # imported, duplicates, blank, seconds, keys/s
    again_cli: tuple[int, int, int, float, int]
    stock: int
    baseline: Latencies
    during: Latencies


def write_key_file(path: Path, count: int) -> None:
    run = uuid.uuid4().hex[:8]
    with path.open("w") as handle:
        for i in range(count):
            handle.write(f"BENCH-{run}-{i:07d}-{secrets.token_hex(8).upper()}\n")


async def run_import(
    env: dict[str, str], key_file: Path, product_pk: int
) -> tuple[float, tuple[int, int, int, float, int]]:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "keys", "import", str(key_file), "--product", str(product_pk),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    wall = time.perf_counter() - started
    match = CLI_RESULT.search(out.decode())
    if process.returncode != 0 or match is None:
        raise SystemExit(f"the import failed ({process.returncode}): {out.decode()} {err.decode()}")
    imported, duplicates, blank, seconds, rate = match.groups()
    return wall, (int(imported), int(duplicates), int(blank), float(seconds), int(rate))


async def bench_backend(backend: str, database_url: str | None, args: argparse.Namespace) -> Report:
    data_dir = Path(tempfile.mkdtemp(prefix=f"kameng-bench-{backend}-"))
    try:
        env = child_env(data_dir, database_url)
        migrated = kameng(env, "migrate")
        if migrated.returncode != 0:
            raise SystemExit(f"migrate failed: {migrated.stderr}")
        key_file = data_dir / "keys.txt"
        write_key_file(key_file, args.keys)
        async with api_server(env, data_dir / "api.log") as url:
            shop = await set_up(url, env)
            print(f"[{backend}] baseline: probes for {args.probe_seconds:g} s, no import", flush=True)
            stop = asyncio.Event()
            probing = asyncio.create_task(probe(url, shop, stop, args.concurrency))
            await asyncio.sleep(args.probe_seconds)
            stop.set()
            baseline = await probing

            print(f"[{backend}] importing {args.keys} keys with `kameng keys import` while probing", flush=True)
            stop = asyncio.Event()
            probing = asyncio.create_task(probe(url, shop, stop, args.concurrency))
            await asyncio.sleep(0.2)  # the probes are running before the import starts
            wall, cli = await run_import(env, key_file, shop.import_product_pk)
            finished = time.perf_counter()
            stop.set()
            # "During" is the import itself, as the command timed it: not the interpreter's
            # start-up before it, which loads the CPU too but is no cost of the import.
            during = (await probing).between(finished - cli[3], finished)

            print(f"[{backend}] importing the same file again (all duplicates)", flush=True)
            _, again = await run_import(env, key_file, shop.import_product_pk)
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                data = await gql(http, "query($id: ID!) { product(id: $id) { stock } }", {"id": shop.import_product})
        return Report(backend, args.keys, wall, cli, again, data["product"]["stock"], baseline, during)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def print_report(report: Report) -> None:
    imported, duplicates, _, seconds, rate = report.cli
    print()
    print(f"== {report.backend}: {report.keys} keys")
    print(f"  import:  {imported} imported, {duplicates} duplicates in {seconds:.2f} s  -> {rate} keys/s "
          f"(process wall time incl. start-up {report.import_wall:.2f} s)")  # fmt: skip
    a_imported, a_duplicates, _, a_seconds, a_rate = report.again_cli
    print(f"  again:   {a_imported} imported, {a_duplicates} duplicates in {a_seconds:.2f} s  -> {a_rate} keys/s")
    print(f"  stock after import: {report.stock} (expected {report.keys})")
    print(f"  {'probe':<10} {'n base':>7} {'n during':>9} {'p50 base':>9} {'p50 dur':>9} {'ratio':>6}"
          f" {'p99 base':>9} {'p99 dur':>9} {'ratio':>6}   (ms)")  # fmt: skip
    for name in PROBES:
        base, during = report.baseline.seconds(name), report.during.seconds(name)
        b50, d50, b99, d99 = (pct(base, 0.5) * 1e3, pct(during, 0.5) * 1e3, pct(base, 0.99) * 1e3, pct(during, 0.99) * 1e3)
        print(f"  {name:<10} {len(base):>7} {len(during):>9} {b50:>9.2f} {d50:>9.2f} {d50 / b50:>6.2f}"
              f" {b99:>9.2f} {d99:>9.2f} {d99 / b99:>6.2f}")  # fmt: skip
    if report.baseline.errors or report.during.errors:
        print(f"  probe errors: baseline {report.baseline.errors}, during {report.during.errors}")


async def main_async(args: argparse.Namespace) -> int:
    reports = []
    if not args.skip_sqlite:
        reports.append(await bench_backend("sqlite", None, args))
    admin = os.environ.get("BENCH_DATABASE_URL")
    if admin:
        async with scratch_postgres(admin) as database_url:
            reports.append(await bench_backend("postgresql", database_url, args))
    else:
        print("(BENCH_DATABASE_URL not set: PostgreSQL skipped)")
    for report in reports:
        print_report(report)
    failed = [r.backend for r in reports if r.stock != r.keys or r.cli[0] != r.keys or r.again_cli[0] != 0]
    bad_probes = [r.backend for r in reports if r.baseline.errors or r.during.errors]
    if failed or bad_probes:
        print(f"\nFAILED: wrong counts on {failed}, probe errors on {bad_probes}", file=sys.stderr)
        return 1
    print(f"\nReproduce: {'BENCH_DATABASE_URL=... ' if admin else ''}uv run python bench/key_import.py"
          + "".join(f" {a}" for a in sys.argv[1:]))  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100_000, help="keys in the file (100000)")
    parser.add_argument("--probe-seconds", type=float, default=5.0, help="length of the baseline (5)")
    parser.add_argument("--concurrency", type=int, default=2, help="concurrent probes of each kind (2)")
    parser.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
