"""Jobs, declared once: the name and arguments of every message the outbox may send.

Use cases build a `JobCall` with one of the functions below and hand it to
`outbox.enqueue`; workers declare their actor under the same `JobName`. An unknown job
cannot be built, so a misspelt name fails at the call, inside the transaction, instead of
being dropped later by the relay. `tests/test_contracts.py` checks every name has exactly one
actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobName(StrEnum):
    DELIVER_ORDER = "deliver_order"
    EXPIRE_ORDER = "expire_order"  # sent by no code now: see workers/commerce.py
    FAN_OUT_POST = "fan_out_post"
    LOYALTY_EVENT = "loyalty_event"
    NOTIFY_NEW_SIGNIN = "notify_new_signin"
    COMPENSATE_LATE_DELIVERY = "compensate_late_delivery"
    REFRESH_RFM = "refresh_rfm"
    FIT_CHURN = "fit_churn"
    RENEW_PLAN = "renew_plan"
    SEND_CAMPAIGN_MESSAGE = "send_campaign_message"
    # Sent by dramatiq itself (on_retry_exhausted of deliver_order), never by the outbox.
    DELIVERY_GAVE_UP = "delivery_gave_up"


@dataclass(frozen=True)
class JobCall:
    name: JobName
    kwargs: dict[str, Any] = field(default_factory=dict)
    delay_ms: int | None = None

    def __post_init__(self) -> None:
        # Refuse a bare string that is not a declared job (JobName(...) raises ValueError).
        object.__setattr__(self, "name", JobName(self.name))


def deliver_order(order_id: int) -> JobCall:
    return JobCall(JobName.DELIVER_ORDER, {"order_id": order_id})


def fan_out_post(post_id: int) -> JobCall:
    return JobCall(JobName.FAN_OUT_POST, {"post_id": post_id})


def loyalty_event(user_id: int, event: str, reference: str, **extra: Any) -> JobCall:
    return JobCall(JobName.LOYALTY_EVENT, {"user_id": user_id, "event": event, "reference": reference, **extra})


def notify_new_signin(session_id: str) -> JobCall:
    return JobCall(JobName.NOTIFY_NEW_SIGNIN, {"session_id": session_id})


def compensate_late_delivery(order_id: int) -> JobCall:
    return JobCall(JobName.COMPENSATE_LATE_DELIVERY, {"order_id": order_id})


def refresh_rfm(user_id: int | None = None) -> JobCall:
    """One buyer's RFM and segment; every buyer's with ``user_id`` None."""
    return JobCall(JobName.REFRESH_RFM, {"user_id": user_id})


def fit_churn() -> JobCall:
    return JobCall(JobName.FIT_CHURN, {})


def renew_plan(renewal_id: int) -> JobCall:
    return JobCall(JobName.RENEW_PLAN, {"renewal_id": renewal_id})


def send_campaign_message(member_id: int) -> JobCall:
    """One campaign message through its channel (the outbox row of the message)."""
    return JobCall(JobName.SEND_CAMPAIGN_MESSAGE, {"member_id": member_id})
