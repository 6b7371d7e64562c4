"""The one graph: roots assembled from the per-domain modules."""

from __future__ import annotations

import strawberry
from strawberry import relay

from kameng.settings import Settings, get_settings
from schema.accounts.users import AccountMutations, AccountQueries, User
from schema.commerce.catalog import CatalogMutations, CatalogQueries, Category, Merchant, Product
from schema.community.community import Comment, CommunityMutations, CommunityQueries, Post, Topic
from schema.executor import FastLeafExecutionContext
from schema.extensions import build_extensions
from schema.node_ids import StrictNodeIds
from schema.community.feeds import FeedQueries, FeedSubscriptions, FollowMutations
from schema.loyalty.loyalty import Coupon, LoyaltyMutations, LoyaltyQueries, UserCoupon
from schema.accounts.notifications import Notification, NotificationMutations, NotificationSubscriptions
from schema.commerce.orders import Order, OrderMutations, OrderQueries, OrderSubscriptions
from schema.commerce.payments import Payment, PaymentMutations


def _query_root() -> type:
    # Made afresh per schema: Strawberry's relay.node() fields are modified when a schema is
    # built from them, so a second schema (tests, benchmarks) needs fields of its own.
    @strawberry.type(name="Query")
    class Query(AccountQueries, CatalogQueries, OrderQueries, LoyaltyQueries, CommunityQueries, FeedQueries):
        node: relay.Node | None = relay.node(
            description="Any object by its global ID (null if not visible).", extensions=[StrictNodeIds()]
        )
        nodes: list[relay.Node | None] = relay.node(
            description="Objects by global ID, in the order asked.", extensions=[StrictNodeIds()]
        )

    return Query


@strawberry.type
class Mutation(
    AccountMutations, NotificationMutations, CatalogMutations, OrderMutations, PaymentMutations, FollowMutations,
    LoyaltyMutations,
    CommunityMutations,
):
    pass


@strawberry.type
class Subscription(NotificationSubscriptions, OrderSubscriptions, FeedSubscriptions):
    pass


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or get_settings()
    return strawberry.Schema(
        query=_query_root(),
        mutation=Mutation,
        subscription=Subscription,
        types=[User, Notification, Merchant, Product, Category, Order, Payment, Coupon, UserCoupon, Post, Comment, Topic],
        extensions=build_extensions(settings),
        execution_context_class=FastLeafExecutionContext,
    )


def print_sdl() -> str:
    return build_schema(Settings()).as_str() + "\n"
