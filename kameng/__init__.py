"""Kameng: the cross-cutting pieces (settings, database, Redis, security, logging, CLI)."""
