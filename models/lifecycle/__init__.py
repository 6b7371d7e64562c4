"""Lifecycle: keeping and winning back buyers (segments, campaigns, experiments, analytics)."""
