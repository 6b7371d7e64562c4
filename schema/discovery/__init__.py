"""Discovery in the graph: behaviour events, recommendations, search and trending keywords."""
