"""The per-request GraphQL context: who is asking, and request-scoped DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from models.accounts import User
from models.orders import OrderEvent
from resolvers import accounts, orders
from resolvers.auth import ANONYMOUS, Actor


class Loaders:
    """One DataLoader per entity, created on first use and dropped with the request."""

    @cached_property
    def user(self) -> DataLoader[int, User | None]:
        return DataLoader(accounts.get_users)

    @cached_property
    def order_events(self) -> DataLoader[int, list[OrderEvent]]:
        return DataLoader(orders.events_of)


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    actor: Actor = ANONYMOUS
    loaders: Loaders = field(default_factory=Loaders)
    connection_params: dict[str, Any] | None = None
    # Set when this request proved a guest order's lookup credentials (orderLookup, createOrder).
    guest_order_id: int | None = None


Info = strawberry.Info[Context, None]
