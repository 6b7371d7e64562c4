"""Discovery in the graph: recommendations, comparison and their measurement (issue 11)."""
