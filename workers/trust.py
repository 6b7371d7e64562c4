"""Trust sweeps: the trade log's periodic append and signed tree head."""

from __future__ import annotations

from resolvers.trust import tradelog

SWEEPS = (tradelog.sweep,)
