"""Every module that declares actors: importing this one declares them all in the job registry
(workers/jobs.py), which the broker binds when a process builds it (workers/broker.py)."""

from __future__ import annotations

from workers import accounts, commerce, community, lifecycle, loyalty, repurchase, trust
from workers.jobs import JOBS, JobSpec

ACTOR_MODULES = (accounts, commerce, community, loyalty, trust, lifecycle, repurchase)


def load_all() -> dict[str, JobSpec]:
    """Every declared job, by name."""
    return JOBS
