"""Helper process for tests/test_worker_crash.py: sets up paid orders through Kameng's own use
cases, on the database, Redis and broker given in the environment, without consuming jobs.

    python -m tests.crash_scenario setup ORDERS   -> prints {"product": id, "orders": [ids]}
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import orjson


async def setup(count: int) -> dict[str, object]:
    from kameng import runtime
    from service import wiring
    from models.commerce.orders import Order, OrderStatus
    from models.commerce.payments import PaymentMethod
    from resolvers.commerce import orders, payments
    from resolvers.accounts.auth import Actor
    from tests.factories import fund, make_product, make_users

    # No in-process worker and no sweeps: only the worker under test consumes the jobs.
    await wiring.start(run_worker=False, sweeps=False)
    try:
        product = await make_product(keys=count, price="1.00")
        made = []
        for user in await make_users(count):
            await fund(user, "1.00")
            actor = Actor(user=user)
            order = await orders.create_order(actor, orders.NewOrder(product.id, 1, uuid.uuid4().hex))
            await payments.pay_order(actor, order.id, PaymentMethod.WALLET)
            made.append(order.id)
        # Every deliver_order message must have left through the outbox before we exit.
        await runtime.current().relay.drain()
        paid = await Order.filter(id__in=made, status=OrderStatus.PAID).count()
        assert paid == count, f"{paid} of {count} orders paid"
        return {"product": product.id, "orders": made}
    finally:
        await wiring.stop()


def main() -> None:
    command, argument = sys.argv[1], int(sys.argv[2])
    if command != "setup":
        raise SystemExit(f"unknown command {command}")
    result = asyncio.run(setup(argument))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
