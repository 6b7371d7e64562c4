"""Discovery jobs: the recommendation model's scheduled training (resolvers/discovery/training.py
decides when and what; every list it writes is served by all API processes)."""

from __future__ import annotations

from resolvers.discovery import training

#: Run by workers/scheduler.py.
SWEEPS = (training.sweep_training,)
