"""The open-loop phase of bench/delivery.py (issue 15): paid orders arrive on a schedule.

Orders start at a steady rate (``--rate`` per second for ``--duration`` seconds), whatever
happened to earlier ones: order i pays at t0 + i / rate. Each order is made ready ``--lead``
seconds before its slot (``createOrder`` and an ``orderStatusChanged`` subscription of its own,
over the buyer's keep-alive connection); then ``payOrder(WALLET)`` is sent at the slot and the
client time-stamps PAID, DELIVERING and DELIVERED as they arrive. An order whose set-up was not
ready at its slot pays when it is (counted as late: the client or the server fell behind).

The per-step breakdown joins the client's times with the database's (same machine, same
clock): the order_event rows (PAID, DELIVERING, DELIVERED, written by the API and the workers)
and the deliver_order job's outbox row (``created_at`` in the payment's transaction,
``published_at`` when the relay stamped it after sending).

    python -m bench.delivery_open seed BUYERS ORDERS_EACH PRODUCTS   (the helper process)
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.delivery import Buyer, Http, create_order, now, pay, pct, subscribe


async def seed(buyers: int, orders_each: int, products: int) -> dict[str, Any]:
    """``buyers`` funded for ``orders_each`` orders of 1.00, ``products`` CARD_KEY products with
    keys for all of them (several products: concurrent createOrder calls race less for keys)."""
    from strawberry.relay import GlobalID

    from models import database as db
    from tests.factories import fund, make_product, make_users, token_for

    await db.init_db()
    try:
        total = buyers * orders_each
        made = [await make_product(keys=-(-total // products), price="1.00", max_quantity=1) for _ in range(products)]
        users = await make_users(buyers)
        gate = asyncio.Semaphore(4)

        async def ready(user: Any) -> str:
            async with gate:
                await fund(user, f"{orders_each}.00")
                return await token_for(user)

        tokens = await asyncio.gather(*(ready(user) for user in users))
        return {"products": [str(GlobalID("Product", str(p.id))) for p in made], "tokens": list(tokens)}
    finally:
        await db.close_db()


@dataclass
class OpenResult:
    rate: float
    duration: float
    orders: list[Buyer] = field(default_factory=list)
    late: int = 0  # orders whose set-up was not ready at their slot
    slot_lag: list[float] = field(default_factory=list)  # payOrder sent - slot, seconds
    rows: dict[int, dict[str, float]] = field(default_factory=dict)  # order -> status -> wall time
    job_rows: dict[int, tuple[float, float]] = field(default_factory=dict)  # order -> (created, published)
    checks: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds over the round, set-ups included
    wall: float = 0.0  # the round's seconds, first set-up to last DELIVERED

    def commit_to_delivered(self) -> list[float]:
        """payOrder answered (the payment committed) -> DELIVERED event at the client."""
        return [b.events["DELIVERED"][0] - b.pay_done for b in self.orders if "DELIVERED" in b.events and b.pay_done]

    def workers_cpu_per_order(self) -> float:
        """The worker processes' CPU over the round (timers coming due, sweeps included) per order."""
        seconds = sum(cpu for name, cpu in self.cpu.items() if name.startswith("worker"))
        return seconds / len(self.orders) if self.orders else float("nan")

    def sent_to_delivered(self) -> list[float]:
        return [b.events["DELIVERED"][0] - b.pay_sent for b in self.orders if "DELIVERED" in b.events]


async def run_open_loop(port: int, ws_url: str, tokens: list[str], products: list[str], rate: float, duration: float,
                        lead: float, deliver_timeout: float) -> OpenResult:  # fmt: skip
    """One open-loop round: ``rate`` x ``duration`` orders, buyer i % len(tokens)."""
    count = int(rate * duration)
    result = OpenResult(rate, duration)
    connections = [Http(port) for _ in tokens]
    locks = [asyncio.Lock() for _ in tokens]  # one request at a time per keep-alive connection
    start = now() + lead + 1.0

    async def one(i: int) -> None:
        slot = start + i / rate
        await asyncio.sleep(max(0.0, slot - lead - now()))
        k = i % len(tokens)
        buyer = Buyer(tokens[k], connections[k])
        result.orders.append(buyer)
        try:
            async with locks[k]:
                await create_order(buyer, products[i % len(products)])
            await subscribe(buyer, ws_url)
        except Exception as exc:  # noqa: BLE001 - reported, the run fails on it
            buyer.problem = buyer.problem or f"set-up of order {i}: {type(exc).__name__}: {exc}"
            return
        wait = slot - now()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            result.late += 1
        async with locks[k]:
            result.slot_lag.append(now() - slot)
            await pay(buyer)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(buyer.done.wait(), deliver_timeout)
        with contextlib.suppress(Exception):
            await buyer.ws.close()

    await asyncio.gather(*(one(i) for i in range(count)))
    for connection in connections:
        await connection.close()
    for buyer in result.orders:
        if buyer.problem:
            result.checks.append(buyer.problem)
        elif "DELIVERED" not in buyer.events:
            result.checks.append(f"order {buyer.order_pk}: no DELIVERED within {deliver_timeout:g} s ({buyer.statuses})")
        elif [s for s in buyer.statuses if s != "PENDING_PAYMENT"] != ["PAID", "DELIVERING", "DELIVERED"]:
            result.checks.append(f"order {buyer.order_pk}: events {buyer.statuses}")
    return result


async def job_rows(dsn: str, orders: list[int]) -> dict[int, tuple[float, float]]:
    """order -> (created_at, published_at) of its deliver_order outbox row."""
    import asyncpg

    connection = await asyncpg.connect(dsn.replace("postgres://", "postgresql://", 1))
    try:
        rows = await connection.fetch(
            "SELECT (payload->'kwargs'->>'order_id')::bigint AS order_id, created_at, published_at FROM outbox "
            "WHERE kind = 'JOB' AND topic = 'deliver_order' AND (payload->'kwargs'->>'order_id')::bigint = ANY($1::bigint[])",
            orders,
        )
    finally:
        await connection.close()
    return {r["order_id"]: (r["created_at"].timestamp(), r["published_at"].timestamp())
            for r in rows if r["published_at"] is not None}  # fmt: skip


def steps(result: OpenResult) -> list[tuple[str, list[float]]]:
    """Where an order's time goes, in seconds, one list per step."""
    out: dict[str, list[float]] = {name: [] for name in (
        "payment: payOrder sent -> answered (tx committed)",
        "publish: job row written -> stamped sent",
        "publish: payOrder answered -> job stamped sent",
        "broker pickup: job sent -> DELIVERING row",
        "job: DELIVERING row -> DELIVERED row",
        "event back: DELIVERED row -> at client",
    )}  # fmt: skip
    names = list(out)
    for b in result.orders:
        row = result.rows.get(b.order_pk, {})
        job = result.job_rows.get(b.order_pk)
        if b.pay_done:
            out[names[0]].append(b.pay_done - b.pay_sent)
        if job:
            out[names[1]].append(job[1] - job[0])
            if b.pay_done_wall:
                out[names[2]].append(job[1] - b.pay_done_wall)
            if "DELIVERING" in row:
                out[names[3]].append(row["DELIVERING"] - job[1])
        if "DELIVERING" in row and "DELIVERED" in row:
            out[names[4]].append(row["DELIVERED"] - row["DELIVERING"])
        if "DELIVERED" in row and "DELIVERED" in b.events:
            out[names[5]].append(b.events["DELIVERED"][1] - row["DELIVERED"])
    return list(out.items())


def summary(label: str, values: list[float]) -> str:
    """min / median / max of per-round figures."""
    if not values:
        return f"  {label:<52} (no rounds)"
    return (f"  {label:<52} min {min(values):>8.1f}  median {statistics.median(values):>8.1f}  "
            f"max {max(values):>8.1f}  ({len(values)} rounds)")  # fmt: skip


def print_open(result: OpenResult, round_no: int) -> None:
    ms = 1e3
    done = result.commit_to_delivered()
    print(f"\n== open loop, round {round_no}: {len(result.orders)} orders at {result.rate:g}/s for {result.duration:g} s "
          f"({result.late} set-ups late; payOrder sent after its slot p50 {pct(result.slot_lag, 0.5) * ms:.1f} ms, "
          f"p99 {pct(result.slot_lag, 0.99) * ms:.1f} ms)")  # fmt: skip
    print(f"  {'latency (ms)':<52} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8}")
    print("  " + "-" * 84)
    for label, values in (
        ("payment committed (payOrder answered) -> DELIVERED", done),
        ("payOrder sent -> DELIVERED event", result.sent_to_delivered()),
        *steps(result),
    ):
        print(f"  {label:<52} {len(values):>5} {pct(values, 0.5) * ms:>8.1f} {pct(values, 0.99) * ms:>8.1f} "
              f"{max(values, default=float('nan')) * ms:>8.1f}")  # fmt: skip
    if result.cpu and result.orders:
        print(f"  CPU over the round ({result.wall:.1f} s, 100 % = one CPU): "
              + ", ".join(f"{name} {seconds / result.wall * 100:.0f} %" for name, seconds in result.cpu.items())
              + f"; per order: workers {result.workers_cpu_per_order() * ms:.2f} ms, "
              f"serve {result.cpu.get('serve', 0.0) / len(result.orders) * ms:.2f} ms")


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "seed":
        result = asyncio.run(seed(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return 0
    raise SystemExit("usage: python -m bench.delivery_open seed BUYERS ORDERS_EACH PRODUCTS (run bench/delivery.py)")


if __name__ == "__main__":
    sys.exit(main())
