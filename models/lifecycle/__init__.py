"""Lifecycle: keeping and winning back buyers (RFM segments, churn risk, campaigns, experiments, analytics)."""
