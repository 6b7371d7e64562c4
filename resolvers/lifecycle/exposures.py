"""Experiment arms on a hot serving path: no SQL per request, exposures written in batches.

``experiments.assign`` reads and writes the exposure table on every call, which is right for
the ``experiment`` query but too dear for a path with a query budget (recommendations cost at
most two SQL queries, tests/test_recommendations.py). ``arm(key, user_id, device_id)`` here
answers from memory:

- the definition comes from ``experiments.cached_experiment`` (one read per process per
  ``KAMENG_EXPERIMENT_CACHE_SECONDS``, refreshed at once by this process's ``define``);
- a unit this process has seen keeps the arm it had (a bounded in-process map of
  ``(experiment, unit) -> arm``, filled from the database after each flush, so a *stored*
  exposure wins);
- any other unit gets the hash (``experiments.bucket``/``choose``, the same function every
  client and process computes), or the arm its device had in this process before sign-in;
- the exposure is queued and a flusher task writes the queue every
  ``KAMENG_EXPERIMENT_FLUSH_SECONDS``: one read of the units already stored, one
  insert-ignore (``bulk_create(ignore_conflicts=True)``) of the rest, each new user exposure
  taking the arm its device had stored, and a read-back that teaches the in-process map the
  arms that won.

**Stickiness, as served.** While an experiment's weights do not change, the hash gives a unit
the same arm in every process, so serving is exactly sticky. After staff change the weights,
a unit that was exposed before keeps its stored arm in every process that has seen it since
its last start; a process that has not may answer the new hash *once* for that unit, and from
its next flush on answers the stored arm. The stored exposure (what the results count) is
never overwritten. A crash loses at most one flush interval of queued exposures (the next
request from those units queues them again).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from kameng.flusher import Flusher
from kameng.settings import get_settings
from models.lifecycle.experiments import ExperimentExposure
from resolvers.lifecycle.experiments import bucket, cached_experiment, choose

_LOCAL_KEY = "lifecycle.exposures"
#: Most (experiment, unit) arms one process remembers (least recently used go first).
REMEMBER = 200_000
#: Most exposures waiting for a flush; past it the newest are not queued (they are re-queued
#: by the unit's next request, since an unremembered unit is queued again).
QUEUE_MAX = 100_000


@dataclass(frozen=True)
class Pending:
    experiment_id: int
    unit: str
    user_id: int | None
    device_id: str | None
    arm: str
    at: datetime


class Exposures(Flusher):
    """This process's remembered arms and the exposures waiting to be written."""

    name = "experiment-exposure-flusher"

    def __init__(self) -> None:
        super().__init__()
        self.arms: OrderedDict[tuple[int, str], str] = OrderedDict()
        self.queue: dict[tuple[int, str], Pending] = {}

    def interval(self) -> float:
        return get_settings().experiment_flush_seconds

    def remember(self, key: tuple[int, str], arm: str) -> None:
        self.arms[key] = arm
        self.arms.move_to_end(key)
        while len(self.arms) > REMEMBER:
            self.arms.popitem(last=False)

    def known(self, key: tuple[int, str]) -> str | None:
        arm = self.arms.get(key)
        if arm is not None:
            self.arms.move_to_end(key)
        return arm

    def add(self, pending: Pending) -> bool:
        """Queue an exposure; False when the queue is full (not remembered, so queued again)."""
        key = (pending.experiment_id, pending.unit)
        if key not in self.queue and len(self.queue) >= QUEUE_MAX:
            return False
        self.queue.setdefault(key, pending)
        self.ensure_running()
        return True

    async def flush(self) -> int:
        """Write the queued exposures; returns how many were new rows (an upper bound)."""
        async with self._lock:
            queued, self.queue = list(self.queue.values()), {}
            if not queued:
                return 0
            try:
                written = 0
                for experiment_id in {p.experiment_id for p in queued}:
                    written += await self._write(experiment_id, [p for p in queued if p.experiment_id == experiment_id])
            except BaseException:
                for p in queued:  # keep them for the next round
                    self.queue.setdefault((p.experiment_id, p.unit), p)
                raise
            self.written += written
            return written

    async def _write(self, experiment_id: int, queued: list[Pending]) -> int:
        units = {p.unit for p in queued} | {f"device:{p.device_id}" for p in queued if p.device_id}
        stored = dict(await ExperimentExposure.filter(experiment_id=experiment_id, unit__in=list(units))
                      .values_list("unit", "arm"))
        rows: list[ExperimentExposure] = []
        for p in queued:
            if p.unit in stored:
                continue
            device_unit = f"device:{p.device_id}" if p.device_id else None
            arm = stored.get(device_unit, p.arm) if device_unit and device_unit != p.unit else p.arm
            rows.append(ExperimentExposure(experiment_id=experiment_id, unit=p.unit, user_id=p.user_id,
                                           device_id=p.device_id, arm=arm, exposed_at=p.at))
        if rows:
            await ExperimentExposure.bulk_create(rows, ignore_conflicts=True)
        # A device's exposure belongs to the user who signed in on it (as ``assign`` does).
        for p in queued:
            if p.user_id is not None and p.device_id and f"device:{p.device_id}" in stored:
                await ExperimentExposure.filter(experiment_id=experiment_id, unit=f"device:{p.device_id}",
                                                user_id__isnull=True).update(user_id=p.user_id)
        won = await ExperimentExposure.filter(experiment_id=experiment_id, unit__in=[p.unit for p in queued]) \
            .values_list("unit", "arm")
        for unit, arm in won:
            self.remember((experiment_id, unit), arm)
        return len(rows)


def state() -> Exposures:
    """This process's exposures (one per runtime)."""
    return Exposures.of_process(_LOCAL_KEY)


async def stop() -> None:
    await Exposures.stop_process(_LOCAL_KEY)


async def flush() -> int:
    """Write what is queued now (tests, and the runtime's stop)."""
    return await state().flush()


async def arm(key: str, user_id: int | None, device_id: str | None) -> str | None:
    """The unit's arm in experiment ``key``, queued as an exposure the first time this process
    serves it. None when there is no unit (no user, no device) or the experiment is unknown:
    the caller serves its default and nothing is logged. A disabled experiment answers its
    first arm (the control) and logs nothing, as ``experiments.assign`` does."""
    if user_id is None and not device_id:
        return None
    experiment = await cached_experiment(key)
    if experiment is None or not experiment.arms:
        return None
    if not experiment.enabled:
        return str(experiment.arms[0]["name"])
    unit = f"user:{user_id}" if user_id is not None else f"device:{device_id}"
    exposures = state()
    found = exposures.known((experiment.id, unit))
    if found is not None:
        return found
    earlier = exposures.known((experiment.id, f"device:{device_id}")) if user_id is not None and device_id else None
    chosen = earlier or choose(experiment.arms, bucket(experiment.key, unit))
    if exposures.add(Pending(experiment.id, unit, user_id, device_id, chosen, datetime.now(UTC))):
        exposures.remember((experiment.id, unit), chosen)
    return chosen
