"""Writing behaviour events: the one way in, for client batches and domain events alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from models.discovery.events import BehaviourEvent, EventKind


@dataclass(frozen=True)
class TrackedEvent:
    event_id: str
    kind: EventKind
    user_id: int | None = None
    device_id: str | None = None
    product_id: int | None = None
    post_id: int | None = None
    topic_id: int | None = None
    merchant_id: int | None = None
    order_id: int | None = None
    query: str | None = None
    surface: str | None = None
    token: str | None = None
    amount: Decimal | None = None
    personalised: bool = True
    client_time: datetime | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def record(events: Sequence[TrackedEvent]) -> None:
    """Write ``events``; an ``event_id`` already written is skipped (idempotent retries)."""
    if not events:
        return
    await BehaviourEvent.bulk_create(
        [BehaviourEvent(**event.__dict__) for event in events], ignore_conflicts=True
    )
