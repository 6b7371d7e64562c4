"""Commerce jobs: each actor decodes its message and calls one use case; the decisions are
in resolvers/commerce (delivery.py, orders.py, settlement.py).

Actor names and options are the job contract (subscriptions/jobs.py): ``deliver_order``
lets ``SupplierUnavailable`` through, so that dramatiq retries it with backoff and, once
its retries are used up, sends ``delivery_gave_up``.
"""

from __future__ import annotations

from typing import Any

from resolvers.commerce import delivery, gifts, orders, settlement
from workers.jobs import job


@job(queue="delivery", max_retries=6, min_backoff=1_000, max_backoff=60_000, on_retry_exhausted="delivery_gave_up")
async def deliver_order(order_id: int) -> None:
    await delivery.deliver_order(order_id)


@job(queue="delivery", max_retries=20)
async def delivery_gave_up(message_data: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """Sent by dramatiq when deliver_order has used up its retries."""
    order_id = int(message_data.get("kwargs", {}).get("order_id", 0))
    if order_id:
        await delivery.give_up(order_id)


@job(queue="default", max_retries=5)
async def expire_order(order_id: int) -> None:
    """Unpaid orders expire by the sweep below; nothing enqueues this any more. It stays so that
    the timers an earlier version enqueued (up to a reservation before a deploy) still run,
    instead of reaching the dead-letter queue as messages for an unknown actor."""
    await orders.expire_order(order_id)


#: What a timer, a crash or a lost message left behind (run by workers/scheduler.py).
SWEEPS = (
    orders.sweep_expired,
    delivery.sweep_stuck_deliveries,
    delivery.sweep_overdue_manual,
    settlement.complete_delivered_orders,
    gifts.return_unclaimed,
)
