"""Discovery in the graph: search and trending keywords."""
