"""Discovery: behaviour events, recommendations, search and trending."""
