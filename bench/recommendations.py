"""Recommendation benchmarks (issue 11), bounded and self-cleaning.

(a) ``serve``: HOME recommendations (20 products with reasons and signed tokens) for random
    users of a seeded shop (products, users, paid orders, guide reads), in this process through
    ``resolvers.discovery.recommendations.recommend``: SQL statements per request and p50/p99
    latency, with the lists read from Redis and from the database, after the training job ran.
(b) ``train``: the production model (``resolvers.discovery.model.fit``, tuning included) on a
    synthetic log of N (default 100,000) interactions, and the whole training job on the seeded
    shop (gather, fit, write every list).

Own temporary data directory (SQLite) or scratch PostgreSQL database (``BENCH_DATABASE_URL``,
an admin URL), own Redis namespace on ``BENCH_REDIS_URL``; everything is dropped afterwards.

    uv run python bench/recommendations.py
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres uv run python bench/recommendations.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.feeds import PG_ADMIN, REDIS_URL, counting, make_users, pct, scratch_database, start_runtime  # noqa: E402


def bench_fit(interactions: int, users: int, items: int, seed: int = 3) -> dict[str, Any]:
    import numpy as np

    from resolvers.discovery import model

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** 0.9
    log = model.Log(rng.integers(0, users, interactions), rng.choice(items, interactions, p=weights / weights.sum()),
                    np.ones(interactions), np.arange(interactions, dtype=np.float64), users, items)
    started = time.process_time()
    wall = time.perf_counter()
    fitted = model.fit(log)
    return {"interactions": interactions, "users": users, "items": items, "model_items": int(fitted.items.size),
            "fit_seconds_wall": round(time.perf_counter() - wall, 2),
            "fit_seconds_cpu": round(time.process_time() - started, 2)}


async def seed(products: int, users: int, orders: int) -> list[int]:
    from models.commerce.catalog import DeliveryKind, Product
    from models.commerce.merchants import Merchant
    from models.commerce.orders import Order, OrderStatus
    from models.community.posts import Post, PostKind
    from models.discovery.events import EventKind
    from resolvers.discovery.tracking import TrackedEvent, record

    user_ids = await make_users(users, f"reco{uuid.uuid4().hex[:6]}-")
    shop = await Merchant.create(owner_id=user_ids[0], name=f"Bench {uuid.uuid4().hex[:8]}")
    await Product.bulk_create([Product(merchant=shop, title=f"Item {i}", price=Decimal("10.00"),
                                       delivery_kind=DeliveryKind.DIRECT_TOPUP) for i in range(products)])
    product_ids = list(await Product.filter(merchant_id=shop.id).order_by("id").values_list("id", flat=True))
    rng = random.Random(5)
    now = datetime.now(UTC)
    rows = []
    for n in range(orders):
        user = rng.choice(user_ids)
        product = product_ids[min(int(rng.paretovariate(1.2)) - 1, products - 1) if n % 2 else rng.randrange(products)]
        at = now - timedelta(hours=rng.uniform(1, 24 * 60))
        rows.append(Order(order_no=uuid.uuid4().hex[:20], buyer_id=user, product_id=product, merchant_id=shop.id,
                          quantity=1, unit_price=Decimal("10.00"), total=Decimal("10.00"),
                          status=OrderStatus.COMPLETED, idempotency_scope=f"u:{user}", idempotency_key=uuid.uuid4().hex,
                          expires_at=at, paid_at=at))
    for start in range(0, len(rows), 2000):
        await Order.bulk_create(rows[start:start + 2000])
    guides = [await Post.create(author_id=user_ids[i], kind=PostKind.GUIDE, title=f"Guide {i}", body="b",
                                body_html="b", product_id=product_ids[i]) for i in range(20)]
    await record([TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.POST_VIEW, user_id=rng.choice(user_ids),
                               post_id=rng.choice(guides).id) for _ in range(2000)])
    return user_ids


async def bench_serve(args: argparse.Namespace) -> dict[str, Any]:
    from models.accounts.users import User
    from resolvers.accounts.auth import Actor
    from resolvers.discovery import recommendations, storage, training
    from resolvers.discovery.recommendations import Surface

    user_ids = await seed(args.products, args.users, args.orders)
    started = time.perf_counter()
    trained = await training.train()
    job_seconds = time.perf_counter() - started
    actors = [Actor(user=u) for u in await User.filter(id__in=random.Random(1).sample(user_ids, 200))]
    result: dict[str, Any] = {"products": args.products, "users": args.users, "orders": args.orders,
                              "train_job_seconds": round(job_seconds, 2), "lists": trained.lists, "load_average": os.getloadavg()[0]}

    async def run(label: str) -> None:
        for actor in actors[:20]:  # warm
            await recommendations.recommend(actor, Surface.HOME, first=20)
        times: list[float] = []
        cpu: list[float] = []
        with counting() as counter:
            for i in range(args.requests):
                t, c = time.perf_counter(), time.process_time()
                answer = await recommendations.recommend(actors[i % len(actors)], Surface.HOME, first=20)
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
                assert len(answer.items) == 20
        # Wall time includes waiting for the CPU on a shared machine; CPU time (all threads of
        # this process, the SQLite driver's included) is the cost itself.
        result[label] = {"requests": args.requests, "p50_ms": round(pct(times, 50), 3),
                         "p99_ms": round(pct(times, 99), 3), "cpu_p50_ms": round(pct(cpu, 50), 3),
                         "cpu_p99_ms": round(pct(cpu, 99), 3), "sql_per_request": round(counter.count / args.requests, 2)}

    await run("from_redis")
    original = storage._redis
    storage._redis = lambda: None  # type: ignore[assignment]
    try:
        await run("from_database")
    finally:
        storage._redis = original  # type: ignore[assignment]
    return result


async def main(args: argparse.Namespace) -> None:
    from tests.conftest import drop_redis_namespace

    report: dict[str, Any] = {"database": "postgresql" if PG_ADMIN else "sqlite"}
    if args.only in (None, "train"):
        report["fit"] = bench_fit(args.interactions, args.fit_users, args.fit_items)
        print(json.dumps({"fit": report["fit"]}), flush=True)
    if args.only in (None, "serve"):
        namespace = f"kbench{uuid.uuid4().hex[:10]}"
        with tempfile.TemporaryDirectory(prefix="kameng-bench-") as tmp:
            try:
                async with scratch_database(Path(tmp)) as dsn:
                    from service import wiring

                    await start_runtime(Path(tmp), dsn, namespace)
                    try:
                        report["serve"] = await asyncio.wait_for(bench_serve(args), args.phase_timeout)
                    finally:
                        await wiring.stop()
            finally:
                await drop_redis_namespace(REDIS_URL, namespace)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["serve", "train"])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--fit-users", type=int, default=6000)
    parser.add_argument("--fit-items", type=int, default=8000)
    parser.add_argument("--phase-timeout", type=float, default=900.0)
    asyncio.run(main(parser.parse_args()))
