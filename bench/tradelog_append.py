"""Trade-log append throughput (issue 14: at least 5,000 leaves/s), with a same-run baseline.

In a fresh database (the embedded SQLite file by default; PostgreSQL when
``BENCH_DATABASE_URL`` names a scratch database that may be written), for each round:

1. write ``--leaves`` pending trade events, as the transitions and postings do (not timed);
2. baseline: move them into leaf rows and delete them, in the same batches and
   transactions as the appender, but with no hashing and no subtree rows -- what the
   database costs for the rows alone (the leaves are then removed again);
3. append: write them again and run ``resolvers.trust.tradelog.append_pending`` -- leaf
   hashes, every completed subtree stored, events deleted -- and time it.

It prints leaves/s for both and their ratio, checks the root against a recomputation
from all stored leaves, and exits 1 when ``--require`` (default 5000) leaves/s is not met.

    uv run python bench/tradelog_append.py
    uv run python bench/tradelog_append.py --leaves 50000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def leaf(i: int) -> str:
    return json.dumps({"amount": "10.00", "at": "2026-01-01T00:00:00+00:00", "currency": "CNY", "event": "order",
                       "order": f"K20260101-{i:010d}", "status": "PAID"}, sort_keys=True, separators=(",", ":"))


async def write_events(count: int, offset: int) -> None:
    from models.trust.tradelog import TradeEvent

    for start in range(0, count, 5000):
        await TradeEvent.bulk_create(
            [TradeEvent(order_id=i, leaf=leaf(offset + i)) for i in range(start, min(count, start + 5000))],
            batch_size=1000,
        )


async def baseline(batch: int) -> int:
    """The appender's row work without the tree: copy to leaf rows, delete the events."""
    from tortoise.transactions import in_transaction

    from models.trust.tradelog import TradeEvent, TradeLeaf

    moved, index = 0, 10**12  # out of the way of real indexes
    while True:
        async with in_transaction():
            events = await TradeEvent.all().order_by("id").limit(batch)
            if not events:
                return moved
            await TradeLeaf.bulk_create(
                [TradeLeaf(index=index + n, event_id=-e.id, order_id=e.order_id, leaf=e.leaf, leaf_hash="")
                 for n, e in enumerate(events)], batch_size=500,
            )
            await TradeEvent.filter(id__in=[e.id for e in events]).delete()
        index += len(events)
        moved += len(events)


async def main(args: argparse.Namespace) -> int:
    from bench.scratch import scratch_database
    from kameng import merkle
    from models.trust.tradelog import TradeLeaf
    from resolvers.trust import tradelog

    async with scratch_database():
        print(f"{'round':>5} {'baseline leaves/s':>18} {'append leaves/s':>16} {'ratio':>6}")
        rates = []
        for r in range(args.rounds):
            await write_events(args.leaves, r * args.leaves)
            began = time.perf_counter()
            assert await baseline(tradelog.BATCH) == args.leaves
            base = args.leaves / (time.perf_counter() - began)
            await TradeLeaf.filter(index__gte=10**12).delete()

            await write_events(args.leaves, r * args.leaves)
            began = time.perf_counter()
            assert await tradelog.append_pending() == args.leaves
            rate = args.leaves / (time.perf_counter() - began)
            rates.append(rate)
            print(f"{r + 1:>5} {base:>18,.0f} {rate:>16,.0f} {rate / base:>6.2f}")
        leaves = await TradeLeaf.all().order_by("index").values_list("leaf", flat=True)
        size = len(leaves)
        hashes = [merkle.leaf_hash(text.encode()) for text in leaves]
        while len(hashes) > 1:  # bottom-up MTH over all leaves, for the check
            hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) if i + 1 < len(hashes) else hashes[i]
                      for i in range(0, len(hashes), 2)]
        assert (await tradelog.root_hash(size)) == hashes[0], "stored root differs from the leaves' root"
        best = max(rates)
        print(f"tree of {size:,} leaves; root checked. best {best:,.0f} leaves/s (require {args.require:,})")
        return 0 if best >= args.require else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaves", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--require", type=int, default=5000)
    sys.exit(asyncio.run(main(parser.parse_args())))
