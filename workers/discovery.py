"""Discovery jobs: the retention sweep of raw behaviour events (resolvers/discovery/events.py).

Client events are written by each API process's own flusher (resolvers/discovery/ingest.py),
server events by the outbox relay; neither needs a message on the broker.
"""

from __future__ import annotations

from resolvers.discovery import events

#: Run by workers/scheduler.py.
SWEEPS = (events.sweep_retention,)
