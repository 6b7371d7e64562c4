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

from models.accounts.users import User
from models.commerce.catalog import Product
from models.commerce.merchants import Category, Merchant
from models.commerce.orders import OrderEvent
from models.loyalty.points import PointsBalance
from models.trust.tradelog import TradeLeaf
from resolvers.accounts import users as accounts
from resolvers.accounts.auth import ANONYMOUS, Actor
from resolvers.commerce import catalog, inventory, ledger, merchants, orders, promises
from resolvers.community import comments, follows, moderation, posts, reactions, topics
from resolvers.loyalty import checkins, points
from resolvers.trust import profile, tickets, tradelog
from resolvers.repurchase import plans


class Loaders:
    """One DataLoader per entity, created on first use and dropped with the request."""

    @cached_property
    def nodes(self) -> dict[str, DataLoader[str, Any]]:
        """Batched ``resolve_nodes`` per GraphQL type name, for fields that reach objects of
        a type they cannot import (schema/accounts/notification_payloads.py fills it)."""
        return {}

    @cached_property
    def user(self) -> DataLoader[int, User | None]:
        return DataLoader(accounts.get_users)

    @cached_property
    def trade_record(self) -> DataLoader[int, list[TradeLeaf]]:
        return DataLoader(tradelog.records_for_orders)

    @cached_property
    def order_events(self) -> DataLoader[int, list[OrderEvent]]:
        return DataLoader(orders.events_of)

    @cached_property
    def merchant(self) -> DataLoader[int, Merchant | None]:
        return DataLoader(merchants.get_merchants)

    @cached_property
    def product(self) -> DataLoader[int, Product | None]:
        return DataLoader(catalog.get_products)

    @cached_property
    def category(self) -> DataLoader[int, Category | None]:
        return DataLoader(merchants.get_categories)

    @cached_property
    def following_count(self) -> DataLoader[int, int]:
        """How many follows each user has: one grouped COUNT per batch."""
        return DataLoader(follows.following_counts)

    @cached_property
    def card_key_stock(self) -> DataLoader[int, int]:
        """Available card keys per product: one grouped COUNT per batch."""
        return DataLoader(inventory.available_counts)

    @cached_property
    def card_key_reveals(self) -> DataLoader[int, list[Any]]:
        """Each order's card-key reveal audit: one query per batch."""
        return DataLoader(inventory.reveals_of)

    @cached_property
    def delivery_stats(self) -> DataLoader[int, Any]:
        """Each shop's delivery record: one grouped query per batch."""
        return DataLoader(promises.delivery_stats)

    @cached_property
    def trust_numbers(self) -> DataLoader[int, Any]:
        """Each shop's ticket, dispute, refund and review numbers: four queries per batch."""
        return DataLoader(profile.trust_numbers)

    @cached_property
    def order_tickets(self) -> DataLoader[int, list[Any]]:
        """Each order's after-sales tickets: one query per batch."""
        return DataLoader(tickets.tickets_of_orders)

    @cached_property
    def account_balance(self) -> DataLoader[str, Decimal]:
        """Ledger balances by account code (``deposit:<id>``, ``merchant:<id>``, ``wallet:<id>``)."""
        return DataLoader(ledger.balances)

    # -- community: posts, comments, like state, topics, circles (resolvers/community/)

    @cached_property
    def post(self) -> DataLoader[int, Any]:
        return DataLoader(posts.get_posts)

    @cached_property
    def comment(self) -> DataLoader[int, Any]:
        return DataLoader(comments.get_comments)

    @cached_property
    def topic(self) -> DataLoader[int, Any]:
        return DataLoader(topics.get_topics)

    @cached_property
    def post_topics(self) -> DataLoader[int, list[Any]]:
        return DataLoader(topics.topics_of_posts)

    @cached_property
    def post_liked(self) -> DataLoader[tuple[int, int], bool]:
        """Keyed by (viewer id, post id)."""
        return DataLoader(reactions.posts_liked)

    @cached_property
    def comment_liked(self) -> DataLoader[tuple[int, int], bool]:
        """Keyed by (viewer id, comment id)."""
        return DataLoader(reactions.comments_liked)

    @cached_property
    def buyer_count(self) -> DataLoader[int, int]:
        """Distinct buyers with a delivered or completed order, per product."""
        return DataLoader(topics.buyer_counts)

    @cached_property
    def circle(self) -> DataLoader[int, Any]:
        """A product's purchaser-circle topic, created on first use."""
        return DataLoader(topics.circles)

    @cached_property
    def open_reports(self) -> DataLoader[tuple[str, int], int]:
        """Open reports per (POST|COMMENT, id)."""
        return DataLoader(moderation.open_report_counts)

    # -- loyalty

    @cached_property
    def points_balance(self) -> DataLoader[int, PointsBalance | None]:
        """Cached points balances per user (None: no points yet)."""
        return DataLoader(points.balances)

    @cached_property
    def check_in_streak(self) -> DataLoader[int, int]:
        """The live check-in streak per user."""
        return DataLoader(checkins.current_streaks)

    # -- repurchase

    @cached_property
    def plan_order(self) -> DataLoader[int, Any]:
        """Orders of the viewer's plans and renewals, by id (the plan's buyer is the viewer)."""
        return DataLoader(plans.get_orders)

    @cached_property
    def plan_renewals(self) -> DataLoader[int, list[Any]]:
        """Each plan's renewals, newest period first: one query per batch."""
        return DataLoader(plans.renewals_of)


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
