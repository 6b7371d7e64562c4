"""Periodic sweeps, run by every process that consumes jobs.

Several worker processes may sweep at once: every sweep is made of conditional, idempotent
steps, so a duplicate sweep finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from workers.commerce import SWEEPS as COMMERCE_SWEEPS
from workers.community import SWEEPS as COMMUNITY_SWEEPS
from workers.discovery import SWEEPS as DISCOVERY_SWEEPS
from workers.loyalty import SWEEPS as LOYALTY_SWEEPS
from workers.trust import SWEEPS as TRUST_SWEEPS
from workers.lifecycle import SWEEPS as LIFECYCLE_SWEEPS
from workers.repurchase import SWEEPS as REPURCHASE_SWEEPS

SWEEPS = (
    *COMMERCE_SWEEPS, *COMMUNITY_SWEEPS, *LOYALTY_SWEEPS, *TRUST_SWEEPS, *DISCOVERY_SWEEPS, *LIFECYCLE_SWEEPS,
    *REPURCHASE_SWEEPS,
)

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sweeps")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> None:
        for sweep in SWEEPS:
            try:
                await sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep %s failed; it runs again next time", sweep.__name__)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.run_once()
