"""Who may do what: the one permission table (role x action) every use case checks through.

Least privilege (issue 10): moderators moderate content; money movements, catalogue changes
and fulfilment belong to the shop's owner or an ADMIN. A row names the roles allowed on
anything and whether the owner of the thing acted on (a shop's owner, a wallet's holder, a
post's author) is allowed too. ``tests/test_permissions.py`` walks this table against the
live API for every role, so a row changed here is a behaviour changed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from models.accounts.users import Role, User
from resolvers.errors import ErrorCode, UserFacingError


class Action(StrEnum):
    # money
    REFUND_ORDER = "REFUND_ORDER"
    #: The buyer keeps the key they have seen: only an ADMIN gives the money back too.
    REFUND_DELIVERED_CARD_KEYS = "REFUND_DELIVERED_CARD_KEYS"
    ADJUST_WALLET = "ADJUST_WALLET"
    HOLD_MERCHANT_DEPOSIT = "HOLD_MERCHANT_DEPOSIT"
    CREATE_COUPON = "CREATE_COUPON"
    ISSUE_COUPONS = "ISSUE_COUPONS"
    # catalogue and fulfilment
    OPEN_SHOP = "OPEN_SHOP"
    CREATE_CATEGORY = "CREATE_CATEGORY"
    CREATE_PRODUCT = "CREATE_PRODUCT"
    UPDATE_PRODUCT = "UPDATE_PRODUCT"
    IMPORT_CARD_KEYS = "IMPORT_CARD_KEYS"
    FULFILL_ORDER = "FULFILL_ORDER"
    # trust and safety
    SET_MERCHANT_STATUS = "SET_MERCHANT_STATUS"
    MODERATE_CONTENT = "MODERATE_CONTENT"
    DELETE_POST = "DELETE_POST"
    # after-sales claims (resolvers/trust/claims.py)
    REPORT_ORDER_PROBLEM = "REPORT_ORDER_PROBLEM"
    CONTEST_CLAIM = "CONTEST_CLAIM"
    DECIDE_CLAIM = "DECIDE_CLAIM"
    # reads of what belongs to someone: wallets, orders, points, coupons, hidden items
    READ_PRIVATE = "READ_PRIVATE"
    READ_SHOP_PRIVATE = "READ_SHOP_PRIVATE"
    # after-sales tickets (the buyer of the order takes part in its ticket as its buyer)
    REPLY_TICKET = "REPLY_TICKET"
    DECIDE_TICKET = "DECIDE_TICKET"
    # discovery
    READ_TRENDS = "READ_TRENDS"
    # experiments (issue 12 item 4)
    MANAGE_EXPERIMENTS = "MANAGE_EXPERIMENTS"
    READ_EXPERIMENT_RESULTS = "READ_EXPERIMENT_RESULTS"
    # merchant back office (issue 13)
    REVIEW_MERCHANT_APPLICATION = "REVIEW_MERCHANT_APPLICATION"
    PAY_SHOP_DEPOSIT = "PAY_SHOP_DEPOSIT"
    REQUEST_WITHDRAWAL = "REQUEST_WITHDRAWAL"
    PROCESS_WITHDRAWAL = "PROCESS_WITHDRAWAL"
    CONFIGURE_SUPPLIER = "CONFIGURE_SUPPLIER"
    CREATE_MERCHANT_COUPON = "CREATE_MERCHANT_COUPON"
    # lifecycle (issue 12): a user's RFM, segment and churn risk, and the rules that name segments
    READ_LIFECYCLE = "READ_LIFECYCLE"
    MANAGE_SEGMENTS = "MANAGE_SEGMENTS"
    # discovery (issue 11)
    READ_RECOMMENDATION_STATS = "READ_RECOMMENDATION_STATS"
    # lifecycle
    READ_ANALYTICS = "READ_ANALYTICS"
    # campaigns (resolvers/lifecycle/campaigns.py)
    MANAGE_CAMPAIGNS = "MANAGE_CAMPAIGNS"
    READ_CAMPAIGN_RESULTS = "READ_CAMPAIGN_RESULTS"


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[Role]
    #: The owner of the thing acted on is allowed whatever their role.
    owner: bool = False


ADMIN = frozenset({Role.ADMIN})
STAFF = frozenset({Role.MODERATOR, Role.ADMIN})

TABLE: dict[Action, Rule] = {
    Action.REFUND_ORDER: Rule(ADMIN, owner=True),
    Action.REFUND_DELIVERED_CARD_KEYS: Rule(ADMIN),
    Action.ADJUST_WALLET: Rule(ADMIN),
    # The platform holds a deposit against a shop (a public trust signal): not the shop's call.
    Action.HOLD_MERCHANT_DEPOSIT: Rule(ADMIN),
    Action.CREATE_COUPON: Rule(ADMIN),
    Action.ISSUE_COUPONS: Rule(ADMIN),
    Action.OPEN_SHOP: Rule(frozenset({Role.MERCHANT, Role.ADMIN})),
    Action.CREATE_CATEGORY: Rule(ADMIN),
    Action.CREATE_PRODUCT: Rule(ADMIN, owner=True),
    Action.UPDATE_PRODUCT: Rule(ADMIN, owner=True),
    # Keys are sold under the shop's name: no one else, not even an ADMIN, puts stock there.
    Action.IMPORT_CARD_KEYS: Rule(frozenset(), owner=True),
    Action.FULFILL_ORDER: Rule(ADMIN, owner=True),
    # A suspension hides a shop, as hiding hides a post: reversible, no money, no catalogue edit.
    Action.SET_MERCHANT_STATUS: Rule(STAFF),
    Action.MODERATE_CONTENT: Rule(STAFF),
    Action.DELETE_POST: Rule(STAFF, owner=True),
    # A claim is the buyer's own word about their order: nobody files it for them.
    Action.REPORT_ORDER_PROBLEM: Rule(frozenset(), owner=True),
    # Only the shop that paid for an automatic outcome contests it; staff do not contest, they decide.
    Action.CONTEST_CLAIM: Rule(frozenset(), owner=True),
    # Deciding a claim moves money (a refund, a reversal): an ADMIN's call, like a refund.
    Action.DECIDE_CLAIM: Rule(ADMIN),
    # Support reads what a user sees of their own (to answer them); it changes nothing.
    Action.READ_PRIVATE: Rule(STAFF, owner=True),
    Action.READ_SHOP_PRIVATE: Rule(STAFF, owner=True),
    # The shop answers complaints about its orders; staff answer any (and read them).
    Action.REPLY_TICKET: Rule(STAFF, owner=True),
    # Resolving or closing someone else's complaint, and the staff queue: never the shop's
    # own call about itself.
    Action.DECIDE_TICKET: Rule(STAFF),
    # Trending keywords with their counts (searches included) are for merchandising staff;
    # the public sees trendingTopics.
    Action.READ_TRENDS: Rule(STAFF),
    # What users see of the shop is an experiment's arm: changing it is an ADMIN's call.
    Action.MANAGE_EXPERIMENTS: Rule(ADMIN),
    Action.READ_EXPERIMENT_RESULTS: Rule(STAFF),
    # Opening a shop holds the applicant's money as a deposit: an ADMIN decides.
    Action.REVIEW_MERCHANT_APPLICATION: Rule(ADMIN),
    # The owner's own wallet pays the deposit of their PENDING_DEPOSIT shop.
    Action.PAY_SHOP_DEPOSIT: Rule(frozenset(), owner=True),
    # Only the shop's owner asks for its money; only an ADMIN approves, pays or rejects.
    Action.REQUEST_WITHDRAWAL: Rule(frozenset(), owner=True),
    Action.PROCESS_WITHDRAWAL: Rule(ADMIN),
    # The supplier's secret is the shop's: its owner sets it and tests it; staff never see it.
    Action.CONFIGURE_SUPPLIER: Rule(frozenset(), owner=True),
    # A merchant coupon is paid by the shop: only its owner commits the shop's money.
    Action.CREATE_MERCHANT_COUPON: Rule(frozenset(), owner=True),
    # Staff see a user's segment and risk; the user does not (only what the segment brings).
    Action.READ_LIFECYCLE: Rule(STAFF),
    # Segment rules steer offers (money): an ADMIN's call, not a moderator's.
    Action.MANAGE_SEGMENTS: Rule(ADMIN),
    # How recommendations perform across the shop: merchandising and support, not shops.
    Action.READ_RECOMMENDATION_STATS: Rule(STAFF),
    # Retention analytics are business data (revenue, LTV), not a moderation tool: ADMIN only.
    Action.READ_ANALYTICS: Rule(ADMIN),
    # A campaign gives away coupons, points and perks (money) to an audience: an ADMIN's call.
    Action.MANAGE_CAMPAIGNS: Rule(ADMIN),
    # Its results are conversions and revenue (business data), like retention analytics.
    Action.READ_CAMPAIGN_RESULTS: Rule(ADMIN),
}


class Caller(Protocol):
    """What the table needs of an actor (resolvers.accounts.auth.Actor)."""

    @property
    def user(self) -> User | None: ...


def permits(user: User | None, action: Action, *, owner_id: int | None = None) -> bool:
    if user is None:
        return False
    rule = TABLE[action]
    return user.role in rule.roles or (rule.owner and owner_id is not None and user.id == owner_id)


def require_signed_in(actor: Caller) -> User:
    if actor.user is None:
        raise UserFacingError(ErrorCode.UNAUTHENTICATED, "Sign in first.")
    return actor.user


def require(actor: Caller, action: Action, *, owner_id: int | None = None) -> User:
    """The signed-in user allowed to ``action`` (on a thing owned by ``owner_id``), or
    UNAUTHENTICATED / FORBIDDEN."""
    user = require_signed_in(actor)
    if not permits(user, action, owner_id=owner_id):
        raise UserFacingError(ErrorCode.FORBIDDEN, "You are not allowed to do this.")
    return user


def allowed(actor: Caller, action: Action, *, owner_id: int | None = None) -> bool:
    """``require`` as a predicate, for reads that hide rather than fail."""
    return permits(actor.user, action, owner_id=owner_id)
