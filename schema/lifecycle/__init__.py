"""Lifecycle: RFM scores, segments, churn risk."""
