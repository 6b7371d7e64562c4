"""Event-bus topics, spelled once: the outbox writes to them and subscriptions read them.

Each topic is built by a function of its typed key, never an f-string at the call site, so
a writer and its readers cannot drift apart.
"""

from __future__ import annotations

LIVE_POSTS = "posts:live"
"""Every newly published post (the community live feed)."""


def order(order_id: int) -> str:
    """Status changes of one order (orderStatusChanged)."""
    return f"order:{order_id}"


def notifications(user_id: int) -> str:
    """A user's new notifications (notificationReceived)."""
    return f"user:{user_id}:notifications"


def post_comments(post_id: int) -> str:
    """New comments on one post (commentAdded)."""
    return f"post:{post_id}:comments"


def replies(user_id: int) -> str:
    """Replies to a user's posts and comments, and mentions (repliesToMe)."""
    return f"user:{user_id}:replies"


def tier(user_id: int) -> str:
    """A user's membership tier changes."""
    return f"user:{user_id}:tier"


def session(session_id: str) -> str:
    """The end of one sign-in session (logout, revocation): its WebSockets close."""
    return f"session:{session_id}"


def ticket(ticket_id: int) -> str:
    """Messages and status changes of one after-sales ticket (ticketUpdated)."""
    return f"ticket:{ticket_id}"
