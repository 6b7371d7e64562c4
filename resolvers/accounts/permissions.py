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
    # reads of what belongs to someone: wallets, orders, points, coupons, hidden items
    READ_PRIVATE = "READ_PRIVATE"
    READ_SHOP_PRIVATE = "READ_SHOP_PRIVATE"
    # lifecycle
    READ_ANALYTICS = "READ_ANALYTICS"


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
    # Support reads what a user sees of their own (to answer them); it changes nothing.
    Action.READ_PRIVATE: Rule(STAFF, owner=True),
    Action.READ_SHOP_PRIVATE: Rule(STAFF, owner=True),
    # Retention analytics are business data (revenue, LTV), not a moderation tool: ADMIN only.
    Action.READ_ANALYTICS: Rule(ADMIN),
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
