"""The job registry: plain async functions declared as dramatiq actors on the broker in use.

Actors are bound to a broker when the process builds it (workers/broker.py), not at import,
so that importing a module never connects to anything and tests can pick the broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from subscriptions.jobs import JobName

JobFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: JobFn
    queue: str
    options: dict[str, Any] = field(default_factory=dict)


JOBS: dict[str, JobSpec] = {}


def job(*, queue: str = "default", **options: Any) -> Callable[[JobFn], JobFn]:
    """Declare ``fn`` as a job. Options are dramatiq's (max_retries, min_backoff, time_limit...)."""

    def register(fn: JobFn) -> JobFn:
        name = JobName(fn.__name__).value  # an actor exists only for a declared job
        if name in JOBS and JOBS[name].fn is not fn:
            raise RuntimeError(f"two jobs are named {name}")
        JOBS[name] = JobSpec(name, fn, queue, options)
        return fn

    return register
