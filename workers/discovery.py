"""Discovery sweeps: the retention of raw behaviour events (resolvers/discovery/events.py), the
search index's backstop (rows written by other paths than the use cases, e.g. seeds), the
trending keywords' periodic recomputation, and the recommendation model's scheduled training
(resolvers/discovery/training.py decides when and what; every list it writes is served by all
API processes).

Client events are written by each API process's own flusher (resolvers/discovery/ingest.py), or
with Redis by the job-consuming processes from the queue the API processes fill
(resolvers/discovery/event_queue.py, started by service/wiring.py); server events by the outbox
relay. None of them needs a message on the broker.
"""

from __future__ import annotations

from resolvers.discovery import events, indexing, training, trending

#: Run by workers/scheduler.py.
SWEEPS = (events.sweep_retention, indexing.index_missing, trending.refresh_due, training.sweep_training)
