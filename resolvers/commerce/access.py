"""An order's buyer: who acts on an order as the one who bought it, and how an actor is
named in its history. Kept apart so that orders, inventory and payments can all ask without
importing each other."""

from __future__ import annotations

from models.commerce.orders import Order
from resolvers.accounts.auth import Actor


def is_buyer(actor: Actor, order: Order) -> bool:
    if actor.user is not None:
        return order.buyer_id == actor.user.id
    return order.buyer_id is None and actor.guest_order_id == order.id


def actor_label(actor: Actor) -> str:
    """How the actor appears in an order's events."""
    return f"user:{actor.user.id}" if actor.user is not None else "guest"
