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
from resolvers import accounts
from resolvers.auth import ANONYMOUS, Actor


class Loaders:
    """One DataLoader per entity, created on first use and dropped with the request."""

    @cached_property
    def user(self) -> DataLoader[int, User | None]:
        return DataLoader(accounts.get_users)


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    actor: Actor = ANONYMOUS
    loaders: Loaders = field(default_factory=Loaders)
    connection_params: dict[str, Any] | None = None


Info = strawberry.Info[Context, None]
