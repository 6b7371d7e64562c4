"""Discovery: what buyers do (behaviour events), what they are shown, what they search."""
