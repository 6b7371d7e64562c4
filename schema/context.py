"""The per-request GraphQL context: who is asking, and request-scoped DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from models.accounts import User
from models.catalog import Category, Merchant, Product
from models.orders import OrderEvent
from resolvers import accounts, catalog, inventory, orders
from resolvers.auth import ANONYMOUS, Actor


class Loaders:
    """One DataLoader per entity, created on first use and dropped with the request."""

    @cached_property
    def user(self) -> DataLoader[int, User | None]:
        return DataLoader(accounts.get_users)

    @cached_property
    def order_events(self) -> DataLoader[int, list[OrderEvent]]:
        return DataLoader(orders.events_of)

    @cached_property
    def merchant(self) -> DataLoader[int, Merchant | None]:
        return DataLoader(catalog.get_merchants)

    @cached_property
    def product(self) -> DataLoader[int, Product | None]:
        return DataLoader(catalog.get_products)

    @cached_property
    def category(self) -> DataLoader[int, Category | None]:
        return DataLoader(catalog.get_categories)

    @cached_property
    def card_key_stock(self) -> DataLoader[int, int]:
        """Available card keys per product: one grouped COUNT per batch."""
        return DataLoader(inventory.available_counts)

    @cached_property
    def account_balance(self) -> DataLoader[str, Decimal]:
        """Ledger balances by account code (``deposit:<id>``, ``merchant:<id>``, ``wallet:<id>``)."""
        return DataLoader(catalog.account_balances)


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
