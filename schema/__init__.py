"""The one graph: roots assembled from the per-domain modules."""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Annotated, Any

import strawberry
from strawberry import relay
from strawberry.types.base import StrawberryObjectDefinition

from kameng.settings import Settings, get_settings
from resolvers.errors import invalid
from schema.accounts.notifications import (
    Notification,
    NotificationMutations,
    NotificationSubscriptions,
)
from schema.accounts.sessions import AccountMutations
from schema.accounts.users import AccountQueries, User
from schema.commerce.catalog import CatalogQueries, Product
from schema.commerce.friendpay import FriendPayMutations, FriendPayQueries
from schema.commerce.gifts import Gift, GiftMutations, GiftQueries
from schema.commerce.inventory import InventoryMutations
from schema.commerce.merchants import Category, Merchant, MerchantMutations, MerchantQueries
from schema.commerce.orders import (
    Order,
    OrderMutations,
    OrderQueries,
    OrderSubscriptions,
)
from schema.commerce.payments import Payment, PaymentMutations
from schema.commerce.pricing import PricingQueries
from schema.commerce.product_edits import CatalogMutations
from schema.commerce.settlement import SettlementMutations
from schema.trust.verification import TrustMutations
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
from schema.base import finish_descriptions
from schema.executor import FastLeafExecutionContext
from schema.scalars import SCALAR_OVERRIDES
from schema.extensions import build_extensions
from schema.loyalty.checkins import CheckInMutations
from schema.loyalty.coupons import Coupon, CouponMutations, CouponQueries, UserCoupon
from schema.loyalty.invitations import InvitationQueries
from schema.loyalty.leaderboard import LeaderboardQueries
from schema.trust.tradelog import TradeLogQueries
from schema.trust.tickets import Ticket, TicketMutations, TicketQueries, TicketSubscriptions
from schema.discovery.search import SearchQueries
from schema.discovery.trending import TrendingQueries
from schema.discovery.tracking import TrackingMutations
from schema.lifecycle.experiments import ExperimentMutations, ExperimentQueries
from schema.commerce.onboarding import OnboardingMutations, OnboardingQueries
from schema.commerce.promotions import PromotionMutations
from schema.commerce.suppliers import SupplierMutations
from schema.commerce.withdrawals import WithdrawalMutations, WithdrawalQueries
from schema.trust.claims import ClaimMutations, ClaimQueries
from schema.lifecycle.segments import LifecycleMutations, LifecycleQueries
from schema.discovery.recommendations import RecommendationQueries
from schema.repurchase.birthdays import BirthdayMutations, BirthdayQueries
from schema.repurchase.plans import PlanMutations, PlanQueries
from schema.repurchase.reminders import ReminderMutations
from schema.repurchase.validity import ValidityMutations, ValidityQueries
from schema.lifecycle.analytics import AnalyticsQueries
from schema.accounts.privacy import PrivacyMutations
from schema.lifecycle.campaigns import CampaignMutations, CampaignQueries
from schema.lifecycle.surveys import SurveyMutations, SurveyQueries

# Every Kameng node is keyed by a database integer (relay.NodeID[int]): a key that is not a
# plain decimal in 64 bits cannot name one, so it is answered null without a lookup.
_NODE_KEY = re.compile(r"0|[1-9][0-9]{0,18}")
_MAX_KEY = 2**63 - 1


def _node_ref(info: strawberry.Info, raw: str) -> tuple[type[relay.Node], str] | None:
    """(node type, key) named by a global ID, or None when it names no possible object."""
    try:
        gid = relay.GlobalID.from_id(raw)
    except ValueError:  # GlobalIDValueError and binascii.Error: not base64 of "Type:key"
        return None
    if not _NODE_KEY.fullmatch(gid.node_id) or int(gid.node_id) > _MAX_KEY:
        return None
    definition = info.schema.get_type_by_name(gid.type_name)
    if not isinstance(definition, StrawberryObjectDefinition) or definition.is_interface:
        return None
    origin = definition.origin
    if not (isinstance(origin, type) and issubclass(origin, relay.Node)):
        return None
    return origin, gid.node_id


async def _resolve(node_type: type[relay.Node], info: strawberry.Info, keys: list[str]) -> list[Any]:
    found = node_type.resolve_nodes(info=info, node_ids=keys)
    return list(await found if inspect.isawaitable(found) else found)


def _query_root(settings: Settings) -> type:
    max_ids = settings.max_node_ids

    @strawberry.type(name="Query", description="Everything that can be read. Fields about a user's private "
                                               "data answer null to others.")
    class Query(
        AccountQueries, CatalogQueries, MerchantQueries, OrderQueries, PricingQueries, CouponQueries, LeaderboardQueries,
        PostQueries, TopicQueries, ModerationQueries, FeedQueries, TradeLogQueries, InvitationQueries,
        TicketQueries, GiftQueries, FriendPayQueries, SearchQueries, TrendingQueries, ExperimentQueries,
        OnboardingQueries, WithdrawalQueries, ClaimQueries, LifecycleQueries, RecommendationQueries,
        PlanQueries, ValidityQueries, BirthdayQueries, AnalyticsQueries,
        CampaignQueries, SurveyQueries,
    ):
        @strawberry.field(description="Any object by its global ID; null if there is no such object, "
                                      "the viewer may not see it, or the ID is not one of ours.")
        async def node(
            self, info: strawberry.Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")]
        ) -> relay.Node | None:
            ref = _node_ref(info, id)
            if ref is None:
                return None
            (found,) = await _resolve(ref[0], info, [ref[1]])
            return found

        @strawberry.field(description="Objects by global ID, in the order asked (100 at most unless configured "
                                      "otherwise); null in place of each one `node` would answer null for.")
        async def nodes(
            self, info: strawberry.Info,
            ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global IDs; repeats are allowed.")],
        ) -> list[relay.Node | None]:
            if len(ids) > max_ids:
                raise invalid("ids", f"Ask for at most {max_ids} IDs at a time (got {len(ids)}).")
            refs = [_node_ref(info, raw) for raw in ids]
            keys: dict[type[relay.Node], list[str]] = {}
            for ref in refs:
                if ref is not None and ref[1] not in keys.setdefault(ref[0], []):
                    keys[ref[0]].append(ref[1])
            # One batch per type, as Strawberry's relay.node() does.
            batches = await asyncio.gather(*(_resolve(t, info, k) for t, k in keys.items()))
            found = {t: dict(zip(k, batch, strict=True)) for (t, k), batch in zip(keys.items(), batches, strict=True)}
            return [found[ref[0]][ref[1]] if ref is not None else None for ref in refs]

    return Query


@strawberry.type(description="Everything that can be changed. Each mutation takes an `input` and answers a "
                             "payload whose `errors` list expected failures; on failure nothing was changed.")
class Mutation(
    AccountMutations, NotificationMutations,
    MerchantMutations, CatalogMutations, InventoryMutations, OrderMutations, PaymentMutations, SettlementMutations,
    GiftMutations, FriendPayMutations,
    TrustMutations, TicketMutations, ClaimMutations,
    FollowMutations,
    CheckInMutations, CouponMutations,
    PostMutations, CommentMutations, ReactionMutations, AnswerMutations, TopicMutations, ModerationMutations,
    TrackingMutations,
    ExperimentMutations,
    OnboardingMutations, WithdrawalMutations, SupplierMutations, PromotionMutations,
    LifecycleMutations,
    PlanMutations, ValidityMutations, ReminderMutations, BirthdayMutations,
    PrivacyMutations,
    CampaignMutations, SurveyMutations,
):
    pass


@strawberry.type(description="Live streams, over the WebSocket endpoint (graphql-transport-ws or graphql-ws) only.")
class Subscription(NotificationSubscriptions, OrderSubscriptions, StreamSubscriptions, TicketSubscriptions):
    pass


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or get_settings()
    schema = strawberry.Schema(
        query=_query_root(settings),
        mutation=Mutation,
        subscription=Subscription,
        types=[User, Notification, Merchant, Product, Category, Order, Payment, Coupon, UserCoupon, Post, Comment, Topic,
           Ticket, Gift],
        extensions=build_extensions(settings),
        execution_context_class=FastLeafExecutionContext,
        scalar_overrides=SCALAR_OVERRIDES,
    )
    finish_descriptions(schema)
    return schema


def print_sdl() -> str:
    return build_schema(Settings()).as_str() + "\n"
