"""Plan renewals: 10,000 renewals due in the same minute, on PostgreSQL + a Redis broker with
several worker processes, with no double charge (issue 13).

One run builds a deployment of its own, as bench/delivery.py does (whose pieces it reuses): a
scratch PostgreSQL database, a Redis namespace (also the broker), ``kameng migrate``, one
``kameng serve`` and N ``kameng worker`` processes (``KAMENG_ENV=production``, no in-process
worker). A helper process seeds, with the project's ORM, a CARD_KEY plan product with one key
per renewal, N funded buyers and one ACTIVE auto-renewing plan each (period 1 paid), all due
at the same instant a little ahead.

Then nothing but the deployment works: each worker's sweep claims due plans
(``SELECT ... FOR UPDATE SKIP LOCKED``, so the workers share them), writes one renewal row
and one ``renew_plan`` job per plan through the outbox, and the jobs create, pay (wallet ->
escrow, a ledger posting) and deliver one ordinary order per plan. The renewal lease is
short (``--lease``, 5 s), so slow renewals are sent again by another worker's sweep while
the first job may still run: duplicates happen on purpose.

While it runs, the client sends ``{ __typename }`` to the API one at a time, interleaved,
and compares its latency under load with the same request before and after the run (idle).

It prints the renewal throughput (renewals paid per second from the due instant to the last
paid, from the renewal rows' own timestamps) and the latency ratio (min/median/max), then
checks in the database: N renewals PAID, one per plan, N paid orders, one ``order.pay``
posting each, every wallet charged exactly once, no order paid twice for a (plan, period).
Everything it made is removed at the end.

    uv run python bench/renewals.py                  # 10,000 renewals, 3 workers
    uv run python bench/renewals.py --renewals 500   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.delivery import (  # noqa: E402
    ADMIN_URL, REDIS_URL, TYPENAME, Http, child_env, drop_namespace, free_port, loopback_only, run_helper,
    scratch_database, start, stop_all, wait_ready, Deployment,
)

PRICE = "3.00"


# -- the helper process ----------------------------------------------------------------------


async def seed(count: int, lead_seconds: float) -> dict[str, Any]:
    from models import database as db
    from models.commerce.catalog import Product
    from models.repurchase.plans import ProductPlan
    from resolvers.commerce import ledger
    from tests.factories import add_keys, make_merchant, make_product, make_users

    await db.init_db()
    try:
        product = await make_product(await make_merchant(), price=PRICE, max_quantity=1)
        await Product.filter(id=product.id).update(plan_min_days=7, plan_max_days=365)
        for start_at in range(0, count, 2000):
            await add_keys(product, min(2000, count - start_at))
        users = await make_users(count)
        for start_at in range(0, count, 500):  # one funding posting per 500 buyers
            chunk = users[start_at:start_at + 500]
            legs = [(ledger.wallet(u.id), ledger.money(PRICE)) for u in chunk]
            await ledger.post("bench.fund", f"renewals:{start_at}", [(ledger.ADJUSTMENTS, -ledger.money(PRICE) * len(chunk)), *legs])
        due = datetime.now(UTC) + timedelta(seconds=lead_seconds)
        await ProductPlan.bulk_create([
            ProductPlan(buyer_id=u.id, product_id=product.id, quantity=1, period_days=30, period=1,
                        idempotency_key=f"bench-plan-{u.id}", next_renewal_at=due)
            for u in users
        ], batch_size=1000)
        return {"product": product.id, "due": due.timestamp(), "users": [users[0].id, users[-1].id]}
    finally:
        await db.close_db()


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Latencies:
    idle: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)


async def typename(http: Http) -> float:
    started = time.perf_counter()
    status, _ = await http.request("POST", "/graphql", TYPENAME)
    assert status == 200
    return (time.perf_counter() - started) * 1e3


async def idle_samples(http: Http, n: int, into: list[float]) -> None:
    for _ in range(n):
        into.append(await typename(http))
        await asyncio.sleep(0.02)


async def paid_count(conn: Any) -> int:
    return await conn.fetchval("SELECT count(*) FROM plan_renewal WHERE status = 'PAID'")


async def run(args: argparse.Namespace) -> list[str]:
    namespace = f"kbench{uuid.uuid4().hex[:10]}"
    data_dir = Path(tempfile.mkdtemp(prefix="kameng-bench-renewals-"))
    problems: list[str] = []
    try:
        async with scratch_database(args.admin_url, namespace) as dsn:
            env = child_env(dsn, args.redis_url, namespace, data_dir, args)
            env.update({"KAMENG_RENEWAL_LEASE_SECONDS": str(args.lease), "KAMENG_SWEEP_SECONDS": "1",
                        "KAMENG_RENEWAL_CLAIM_BATCH": "500"})
            dep = Deployment(env, dsn, namespace, free_port(), data_dir)
            try:
                print(f"[setup] database and Redis namespace {namespace}", flush=True)
                await run_helper(env, "service", "migrate")
                seeded = orjson.loads((await run_helper(
                    env, "bench.renewals", "seed", str(args.renewals), str(args.lead), timeout=600,
                )).strip().splitlines()[-1])
                start(dep, "serve", "serve", "--host", "127.0.0.1", "--port", str(dep.port))
                for n in range(args.workers):
                    start(dep, f"worker-{n}", "worker")
                await wait_ready(dep)
                problems = await measure(dep, seeded, args)
            finally:
                await stop_all(dep.processes)
                print(f"[cleanup] {len(dep.processes)} processes stopped", flush=True)
    finally:
        await drop_namespace(args.redis_url, namespace)
        shutil.rmtree(data_dir, ignore_errors=True)
    return problems


async def measure(dep: Deployment, seeded: dict[str, Any], args: argparse.Namespace) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(dep.dsn.replace("postgres://", "postgresql://", 1))
    http = Http(dep.port)
    await http.open()
    lat = Latencies()
    try:
        due = seeded["due"]
        if time.time() > due:
            print(f"  (set-up outlasted the lead: the renewals were due {time.time() - due:.0f} s before the start)")
        await idle_samples(http, 40, lat.idle)  # idle, before
        await asyncio.sleep(max(0.0, due - time.time()))
        print(f"[run] {args.renewals} renewals due now; {args.workers} workers", flush=True)
        deadline = time.monotonic() + args.run_timeout
        last_report = 0.0
        while (done := await paid_count(conn)) < args.renewals:
            dep.check_alive()
            if time.monotonic() > deadline:
                return [f"only {done} of {args.renewals} renewals paid within {args.run_timeout:g} s"]
            lat.loaded.append(await typename(http))  # interleaved with the run
            if time.monotonic() - last_report > 10:
                print(f"  ... {done} paid", flush=True)
                last_report = time.monotonic()
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)  # let the duplicates sent by expired leases arrive and find nothing to do
        await idle_samples(http, 40, lat.idle)  # idle again, after
        return await report(conn, seeded, lat, args)
    finally:
        await http.close()
        await conn.close()


def spread(values: list[float]) -> str:
    return f"min {min(values):.2f} / median {statistics.median(values):.2f} / max {max(values):.2f} ms"


async def report(conn: Any, seeded: dict[str, Any], lat: Latencies, args: argparse.Namespace) -> list[str]:
    n = args.renewals
    row = await conn.fetchrow("SELECT min(created_at) AS first, max(updated_at) AS last, count(*) AS rows, "
                              "sum(attempts) AS failed FROM plan_renewal WHERE status = 'PAID'")
    due = datetime.fromtimestamp(seeded["due"], UTC)
    seconds = (row["last"] - due).total_seconds()
    print(f"\n  renewals paid: {row['rows']} in {seconds:.1f} s from the due instant -> {row['rows'] / seconds:.0f} renewals/s")
    print(f"  first claimed {(row['first'] - due).total_seconds():.1f} s after due; failed attempts: {row['failed']}")
    jobs = await conn.fetchval("SELECT count(*) FROM outbox WHERE topic = 'renew_plan'")
    if jobs:
        again = f"{jobs - n} sent again after their lease expired" if jobs > n else "none sent again"
        print(f"  renew_plan jobs sent: {jobs} ({again})")
    print(f"  {{ __typename }} idle:   {spread(lat.idle)} ({len(lat.idle)} requests)")
    print(f"  {{ __typename }} loaded: {spread(lat.loaded)} ({len(lat.loaded)} requests, interleaved with the run)")
    ratio = [a / b for a, b in ((min(lat.loaded), min(lat.idle)), (statistics.median(lat.loaded), statistics.median(lat.idle)),
                                (max(lat.loaded), max(lat.idle)))]
    print(f"  latency ratio loaded/idle: min {ratio[0]:.2f}x / median {ratio[1]:.2f}x / max {ratio[2]:.2f}x")

    problems = []
    checks = {
        "renewals PAID": await conn.fetchval("SELECT count(*) FROM plan_renewal WHERE status = 'PAID'"),
        "plans at period 2": await conn.fetchval("SELECT count(*) FROM product_plan WHERE period = 2 AND renewal_state = 'IDLE'"),
        "paid renewal orders": await conn.fetchval(
            "SELECT count(*) FROM orders WHERE idempotency_key LIKE 'plan-%' AND paid_at IS NOT NULL"),
        "order.pay postings": await conn.fetchval(
            "SELECT count(*) FROM ledger_posting p JOIN orders o ON p.reason = 'order.pay' AND p.reference = o.id::text "
            "WHERE o.idempotency_key LIKE 'plan-%'"),
        "empty wallets": await conn.fetchval(
            "SELECT count(*) FROM ledger_account WHERE code LIKE 'wallet:%' AND balance = 0"),
    }
    for name, value in checks.items():
        print(f"  check: {name} = {value}")
        if value != n:
            problems.append(f"{name}: {value}, expected {n}")
    twice = await conn.fetchval(
        "SELECT count(*) FROM (SELECT split_part(idempotency_key, '-', 2), split_part(idempotency_key, '-', 3) "
        "FROM orders WHERE idempotency_key LIKE 'plan-%' AND paid_at IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) t")
    negative = await conn.fetchval("SELECT count(*) FROM ledger_account WHERE code LIKE 'wallet:%' AND balance < 0")
    print(f"  check: (plan, period) paid more than once = {twice}; negative wallets = {negative}")
    if twice or negative:
        problems.append(f"double charges: {twice}, negative wallets: {negative}")
    return problems


async def main_async(args: argparse.Namespace) -> int:
    for url in (args.admin_url, args.redis_url):
        loopback_only(url)
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    started = time.monotonic()
    try:
        async with asyncio.timeout(args.timeout):
            problems = await run(args)
    except TimeoutError:
        print(f"\nFAILED: the run did not finish within {args.timeout:g} s (everything was cleaned up)", file=sys.stderr)
        return 1
    print(f"\n  ({time.monotonic() - started:.0f} s in all, set-up and clean-up included)")
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"  checked: {args.renewals} renewals, each paid exactly once")
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "seed":  # the helper process
        result = asyncio.run(seed(int(sys.argv[2]), float(sys.argv[3])))
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renewals", type=int, default=10_000, help="plans due at the same instant (10000)")
    parser.add_argument("--workers", type=int, default=3, help="`kameng worker` processes (3)")
    parser.add_argument("--threads", type=int, default=4, help="worker threads per worker process (4)")
    parser.add_argument("--lead", type=float, default=20, help="seconds from the end of seeding to the due instant (20)")
    parser.add_argument("--lease", type=float, default=5, help="KAMENG_RENEWAL_LEASE_SECONDS: resend after (5)")
    parser.add_argument("--db-pool", type=int, default=0, help="connections per process (Tortoise's default)")
    parser.add_argument("--run-timeout", type=float, default=900, help="wait for every renewal at most (900 s)")
    parser.add_argument("--timeout", type=float, default=1800, help="the whole run (1800 s)")
    parser.add_argument("--admin-url", default=ADMIN_URL, help=f"PostgreSQL admin URL ({ADMIN_URL})")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis, also the broker ({REDIS_URL})")
    parser.add_argument("--log-level", default="WARNING", help="KAMENG_LOG_LEVEL of the processes (WARNING)")
    args = parser.parse_args()
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted (everything was cleaned up)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
