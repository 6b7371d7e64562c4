"""A per-process background writer: something buffered in memory, written in batches every
``interval`` seconds or sooner when woken, and written once more on stop. Subclasses hold the
buffer and implement ``flush``; behaviour events, the Redis queue of events and experiment
exposures use it, one of each per process, held in the runtime (``of_process``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Self

from kameng import runtime

log = logging.getLogger(__name__)


class Flusher:
    #: The task's name, and what a failed flush is logged as.
    name = "flusher"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.written = 0

    @classmethod
    def of_process(cls, key: str) -> Self:
        """This process's one flusher under ``key`` in the runtime, made on first use."""
        local = runtime.current().local
        found = local.get(key)
        if found is None:
            found = local[key] = cls()
        return found

    @staticmethod
    async def stop_process(key: str) -> None:
        """Stop and forget this process's flusher under ``key``, if it has one (the runtime's stop)."""
        if runtime.is_started():
            found = runtime.current().local.pop(key, None)
            if found is not None:
                await found.stop()

    def interval(self) -> float:
        raise NotImplementedError

    async def flush(self) -> int:
        raise NotImplementedError

    def ensure_running(self) -> None:
        """Start the loop on first use (never after stop)."""
        if self._task is None and not self._stopping:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        interval = self.interval()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: flush failed; retrying", self.name)
                await asyncio.sleep(min(interval * 4, 5))

    async def stop(self) -> None:
        """Stop the loop and write what is left (the runtime's stop calls this)."""
        self._stopping = True
        if self._task is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
