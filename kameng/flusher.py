"""A per-process background writer: something buffered in memory, written in batches every
``interval`` seconds or sooner when woken, and written once more on stop. Subclasses hold the
buffer and implement ``flush``; behaviour events and experiment exposures both use it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

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
