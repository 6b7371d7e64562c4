"""Trust jobs: late-delivery compensation (the decisions are in resolvers/trust/promises.py)."""

from __future__ import annotations

from resolvers.trust import promises
from workers.jobs import job


@job(queue="default", max_retries=5)
async def compensate_late_delivery(order_id: int) -> None:
    await promises.compensate_late_delivery(order_id)


#: Late orders whose job was lost, or whose shop could not pay yet (run by workers/scheduler.py).
SWEEPS = (promises.sweep_late_deliveries,)
