"""The one graph: roots assembled from the per-domain modules."""

from __future__ import annotations

import strawberry
from strawberry import relay

from kameng.settings import Settings, get_settings
from schema.accounts.notifications import (
    Notification,
    NotificationMutations,
    NotificationSubscriptions,
)
from schema.accounts.sessions import AccountMutations
from schema.accounts.users import AccountQueries, User
from schema.commerce.catalog import (
    CatalogMutations,
    CatalogQueries,
    Category,
    Merchant,
    Product,
)
from schema.commerce.orders import (
    Order,
    OrderMutations,
    OrderQueries,
    OrderSubscriptions,
)
from schema.commerce.payments import Payment, PaymentMutations
from schema.commerce.pricing import PricingQueries
from schema.community.answers import AnswerMutations
from schema.community.comments import CommentMutations
from schema.community.feeds import FeedQueries
from schema.community.follows import FollowMutations
from schema.community.moderation import ModerationMutations, ModerationQueries
from schema.community.posts import PostMutations, PostQueries
from schema.community.reactions import ReactionMutations
from schema.community.streams import StreamSubscriptions
from schema.community.topics import TopicMutations, TopicQueries
from schema.community.types import Comment, Post, Topic
from schema.executor import FastLeafExecutionContext
from schema.extensions import build_extensions
from schema.loyalty.checkins import CheckInMutations
from schema.loyalty.coupons import Coupon, CouponMutations, CouponQueries, UserCoupon
from schema.loyalty.leaderboard import LeaderboardQueries


def _query_root() -> type:
    # Made afresh per schema: Strawberry's relay.node() fields are modified when a schema is
    # built from them, so a second schema (tests, benchmarks) needs fields of its own.
    @strawberry.type(name="Query")
    class Query(
        AccountQueries, CatalogQueries, OrderQueries, PricingQueries, CouponQueries, LeaderboardQueries,
        PostQueries, TopicQueries, ModerationQueries, FeedQueries,
    ):
        node: relay.Node | None = relay.node(description="Any object by its global ID (null if not visible).")
        nodes: list[relay.Node | None] = relay.node(description="Objects by global ID, in the order asked.")

    return Query


@strawberry.type
class Mutation(
    AccountMutations, NotificationMutations, CatalogMutations, OrderMutations, PaymentMutations, FollowMutations,
    CheckInMutations, CouponMutations,
    PostMutations, CommentMutations, ReactionMutations, AnswerMutations, TopicMutations, ModerationMutations,
):
    pass


@strawberry.type
class Subscription(NotificationSubscriptions, OrderSubscriptions, StreamSubscriptions):
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
