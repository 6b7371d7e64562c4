"""The dramatiq workers a process runs to consume jobs: one per polling pace.

On the Redis broker an idle consumer polls its queue, backing off up to its worker's timeout.
A buyer waits on the pick-up of a delivery and of a post's fan-out to feeds, so those queues
are looked at every ``worker_poll_ms``; every other queue (loyalty events, renewals,
reminders, model refits) can wait ``worker_background_poll_ms``. Polling all eight
queues (each with its delay queue) every 100 ms cost an idle ``kameng worker`` ~9 % of a CPU
(issue 15). RabbitMQ and the in-process stub broker push, so there the pace only sets how
often an idle consumer wakes.

Two ``dramatiq.Worker`` instances split the queues with dramatiq's public ``queues`` whitelist,
which also sends each delay queue (``.DQ``) to the worker of its queue.
"""

from __future__ import annotations

import logging

import dramatiq

from kameng.settings import Settings
from workers.broker import queue_name

# The queues whose pick-up a buyer sees: a paid order's delivery, a post reaching feeds.
PROMPT_QUEUES = ("delivery", "feeds")


class Consumers:
    """The workers consuming every queue declared on ``broker``; ``start`` and ``stop`` both."""

    def __init__(self, broker: dramatiq.Broker, settings: Settings, threads: int) -> None:
        self.broker = broker
        prompt = {queue_name(settings, q) for q in PROMPT_QUEUES}
        # Declared queue names are canonical (no .DQ); build_broker declares every job's queue.
        background = set(broker.get_declared_queues()) - prompt
        self.workers = [
            dramatiq.Worker(broker, queues=prompt, worker_threads=threads, worker_timeout=settings.worker_poll_ms)
        ]
        if background:  # an empty whitelist would mean "every queue" to dramatiq
            self.workers.append(
                dramatiq.Worker(
                    broker,
                    queues=background,
                    worker_threads=threads,
                    worker_timeout=settings.worker_background_poll_ms,
                )
            )

    def start(self) -> None:
        # Each worker adds its own middleware to the broker to hear of queues; dramatiq allows the
        # duplicate but warns of it, and two workers on one broker are the point here.
        quiet = _SecondWorkerMiddleware()
        self.broker.logger.addFilter(quiet)
        try:
            for worker in self.workers:
                worker.start()
        finally:
            self.broker.logger.removeFilter(quiet)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    @property
    def queues(self) -> dict[str, int]:
        """Each consumed queue (delay queues included) and its worker's polling cap, in ms."""
        return {name: worker.worker_timeout for worker in self.workers for name in worker.consumers}


class _SecondWorkerMiddleware(logging.Filter):
    """Drops dramatiq's warning about a second ``_WorkerMiddleware``, and only that one."""

    def filter(self, record: logging.LogRecord) -> bool:
        duplicate = isinstance(record.msg, str) and record.msg.startswith("You're adding a middleware of the same type")
        args = record.args if isinstance(record.args, tuple) else ()
        return not (duplicate and args and type(args[0]).__name__ == "_WorkerMiddleware")
