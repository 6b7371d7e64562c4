"""Lifecycle: keeping and winning back buyers (issue 12): segments, churn, campaigns, experiments, retention analytics."""
