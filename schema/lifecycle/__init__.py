"""Lifecycle in the graph (issue 12): retention analytics and, with the other items, segments and campaigns."""
