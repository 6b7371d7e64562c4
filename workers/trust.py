"""Trust jobs: late-delivery compensation (resolvers/trust/promises.py decides), and the
sweeps: late orders whose job was lost or whose shop could not pay yet, and the trade log's
periodic append and signed tree head (resolvers/trust/tradelog.py), and after-sales tickets
past their SLA escalated to staff (resolvers/trust/tickets.py)."""

from __future__ import annotations

from resolvers.trust import promises, tickets, tradelog
from workers.jobs import job


@job(queue="default", max_retries=5)
async def compensate_late_delivery(order_id: int) -> None:
    await promises.compensate_late_delivery(order_id)


#: Run by workers/scheduler.py.
SWEEPS = (promises.sweep_late_deliveries, tradelog.sweep, tickets.escalate_overdue)
