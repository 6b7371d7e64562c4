"""Discovery sweeps: the search index's backstop (rows written by other paths than the use
cases, e.g. seeds) and the trending keywords' periodic recomputation."""

from __future__ import annotations

from resolvers.discovery import indexing, trending

#: Run by workers/scheduler.py.
SWEEPS = (indexing.index_missing, trending.refresh_due)
