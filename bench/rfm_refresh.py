"""One buyer's RFM refresh (the ``refresh_rfm`` job every completed or refunded order queues)
among ``--buyers`` stored buyers, with a same-run baseline.

In a fresh database (the embedded SQLite file by default; PostgreSQL when ``BENCH_DATABASE_URL``
names a scratch database that may be written): store ``--buyers`` synthetic RFM rows and one real
buyer with two completed orders, then, interleaved over ``--rounds`` rounds, time

1. baseline: reading that buyer's completed orders (``rfm.purchases``), which any refresh must do;
2. refresh: ``rfm.recompute_user`` -- the orders, the user held, the ranks, the row written.

It prints wall time and this process's CPU per call (min / median / max) and the refresh's ratio to
the baseline. The refresh used to read and sort every buyer's row (issue 15, tenth run in
bench/README.md); then the database counted them per call ("counted", timed in the same rounds);
past ``rfm_exact_below`` stored buyers the process now ranks against populations it holds
("refresh"; the one call that read them is printed apart).

    uv run python bench/rfm_refresh.py --buyers 100000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


async def main(args: argparse.Namespace) -> int:
    from bench.scratch import scratch_database
    from kameng.settings import configure
    from models.accounts.users import Role
    from models.commerce.orders import Order, OrderStatus
    from models.lifecycle.segments import BuyerRfm, Stage
    from resolvers.commerce.orders import new_order_no
    from resolvers.lifecycle import rfm
    from tests.factories import make_product, make_user

    async with scratch_database() as settings:
        rnd, now = random.Random(7), datetime.now(UTC)
        for start in range(0, args.buyers, 5000):
            await BuyerRfm.bulk_create([
                BuyerRfm(user_id=10**9 + i, recency_days=rnd.randint(0, 400), frequency=rnd.randint(1, 30),
                         monetary=Decimal(rnd.randint(100, 100_000)) / 100, first_purchase_at=now,
                         last_purchase_at=now, stage=Stage.ACTIVE, computed_at=now)
                for i in range(start, min(args.buyers, start + 5000))
            ], batch_size=1000)
        product = await make_product(price="12.34")
        buyer = await make_user(Role.BUYER)
        for days in (3, 40):
            at = now - timedelta(days=days)
            await Order.create(order_no=new_order_no(), buyer=buyer, product=product,
                               merchant_id=product.merchant_id, quantity=1, unit_price=Decimal("12.34"),
                               total=Decimal("12.34"), status=OrderStatus.COMPLETED,
                               idempotency_scope=f"u:{buyer.id}", idempotency_key=uuid.uuid4().hex,
                               expires_at=at, paid_at=at)
        await rfm.recompute_user(buyer.id)  # warm: the rules, the statements; counts the stored rows
        wall, cpu = time.perf_counter(), time.process_time()
        await rfm.recompute_user(buyer.id)  # past rfm_exact_below: reads the populations it then holds
        first, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
        # The same refresh with the database counting every time (as below rfm_exact_below).
        counting = settings.model_copy(update={"rfm_exact_below": 10**12})
        timed: dict[str, tuple[list[float], list[float]]] = {"baseline": ([], []), "counted": ([], []),
                                                             "refresh": ([], [])}
        for _ in range(args.rounds):
            for name, mode, call in (("baseline", settings, lambda: rfm.purchases([buyer.id])),
                                     ("counted", counting, lambda: rfm.recompute_user(buyer.id)),
                                     ("refresh", settings, lambda: rfm.recompute_user(buyer.id))):
                configure(mode)
                wall, cpu = time.perf_counter(), time.process_time()
                await call()
                timed[name][0].append(time.perf_counter() - wall)
                timed[name][1].append(time.process_time() - cpu)
        configure(settings)
        print(f"{args.buyers:,} buyers stored, {args.rounds} rounds "
              f"({'PostgreSQL' if not settings.is_sqlite else 'SQLite'}; rfm_exact_below "
              f"{settings.rfm_exact_below:,}), ms per call:")
        print(f"  the refresh that read the populations to hold: {first * 1e3:.2f}, this process's CPU "
              f"{first_cpu * 1e3:.2f} (once per process and rfm_population_seconds, "
              f"{settings.rfm_population_seconds:g} s)")
        for name, (walls, cpus) in timed.items():
            print(f"  {name:<9} wall min {min(walls) * 1e3:8.2f} median {statistics.median(walls) * 1e3:8.2f} "
                  f"max {max(walls) * 1e3:8.2f}   this process's CPU median {statistics.median(cpus) * 1e3:8.2f}")
        for name in ("counted", "refresh"):
            ratios = [r / b for r, b in zip(timed[name][0], timed["baseline"][0], strict=True)]
            print(f"  {name} / baseline (wall, per round): min {min(ratios):.1f} "
                  f"median {statistics.median(ratios):.1f} max {max(ratios):.1f}")
        return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buyers", type=int, default=100_000, help="stored buyers' RFM rows (100,000)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (20)")
    sys.exit(asyncio.run(main(parser.parse_args())))
