"""Settings of the public-page speed work (issue 15): the response cache and the lean path.
A mixin of ``kameng.settings.Settings`` (read from the same ``KAMENG_*`` environment)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SpeedSettings(BaseModel):
    # The response cache of anonymous public queries (service/web/response_cache.py): on or
    # off, how long an entry may live at most (invalidation is what keeps it fresh; this is a
    # safety net) and how many entries a process keeps (least recently used dropped first).
    response_cache: bool = True
    response_cache_ttl: float = Field(default=60, gt=0)
    response_cache_entries: int = Field(default=5000, ge=1)
    # Longest a committing request waits for the other API processes to acknowledge an
    # invalidation sent through Redis, in milliseconds.
    response_cache_ack_ms: int = Field(default=100, ge=0, le=5000)
    # One access-log line per this many requests (1: every request; errors are always logged).
    access_log_every: int = Field(default=1, ge=1)
    # Garbage collector at start-up: objects allocated before the first young collection
    # (CPython's default is 700), and gc.freeze() of everything loaded while booting.
    gc_young_threshold: int = Field(default=20000, ge=0)
