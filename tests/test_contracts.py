"""Contracts between processes are declared once: every job name has exactly one actor, and
a job that is not declared cannot be enqueued (it fails at the call, in the transaction)."""

from __future__ import annotations

import pytest

from subscriptions import jobs, outbox, topics
from workers.actors import load_all
from workers.jobs import JOBS, job


def test_every_declared_job_has_one_actor_and_every_actor_is_declared() -> None:
    load_all()
    assert set(JOBS) == {name.value for name in jobs.JobName}


def test_an_undeclared_job_cannot_be_built_or_registered() -> None:
    with pytest.raises(ValueError):
        jobs.JobCall("deliver_ordr", {"order_id": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError):

        @job()
        async def deliver_ordr(order_id: int) -> None:  # pragma: no cover - never registered
            return None


async def test_enqueue_refuses_a_bare_name_before_writing(stack: object) -> None:
    # The block's own writes, not a count of the table: other tests' deliveries add rows meanwhile.
    async with outbox.atomic():
        with pytest.raises(TypeError):
            await outbox.enqueue("deliver_order")  # type: ignore[arg-type]
        writes = outbox.current()
        assert writes is not None and writes.entries == []


def test_topics_are_built_from_typed_keys() -> None:
    assert topics.order(7) == "order:7"
    assert topics.notifications(7) == "user:7:notifications"
    assert topics.post_comments(7) == "post:7:comments"
    assert topics.replies(7) == "user:7:replies"
    assert topics.tier(7) == "user:7:tier"
