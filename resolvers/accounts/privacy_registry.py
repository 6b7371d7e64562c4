"""The personal-data registry (issue 12 item 6): for every model Kameng stores, which columns
tie a row to a user, what an export gives them and what account deletion does to it.

Every model of ``models.MODEL_MODULES`` has exactly one entry here; ``tests/test_privacy.py``
fails on a model without one, so a new table cannot hold personal data unnoticed. The
export (``resolvers/accounts/privacy.export_my_data``), the deletion and the test that walks
the database after a deletion all read this table, so they cannot disagree.

What deletion does to the user's rows (``Erasure``):

* ``NONE``: the table holds no personal data (catalogue, configuration, anonymous
  aggregates, or rows about an order that name no person).
* ``DELETE``: the rows go (notifications, likes, follows, birthdays, profiles, lists).
* ``SCRUB``: the rows stay because others rely on them (an order's books, a ticket's thread,
  a comment's replies) and their personal fields take the values in ``scrub``.
* ``UNLINK``: the rows stay for anonymous aggregates with the link columns nulled
  (behaviour events, experiment exposures).
* ``KEEP``: bookkeeping that names the user by id only (ledger-backed points, payments,
  compensation). The id now names a pseudonymous, emptied account: nothing else remains.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tortoise.expressions import Q

from models.community.follows import FollowKind
from models.community.posts import ContentStatus

DELETED_NICKNAME = "deleted user"
UNUSABLE_PASSWORD = "!deleted"  # not an argon2 hash: verify_password answers False


def placeholder_email(user_id: int) -> str:
    """Unique (the column is) and undeliverable (RFC 2606 reserves .invalid)."""
    return f"deleted-{user_id}@deleted.invalid"


class Erasure(StrEnum):
    NONE = "NONE"
    DELETE = "DELETE"
    SCRUB = "SCRUB"
    UNLINK = "UNLINK"
    KEEP = "KEEP"


#: A scrub value: a constant, or a function of the user's id.
Value = Any


@dataclass(frozen=True)
class Policy:
    erasure: Erasure
    why: str
    #: Columns holding the user's id (FKs by their ``_id`` name); a (column, template) pair
    #: for a text key such as ``u:{}``.
    links: tuple[str | tuple[str, str], ...] = ()
    #: Field -> value after deletion (SCRUB; UNLINK adds its nulled links itself).
    scrub: Mapping[str, Value] = field(default_factory=dict)
    #: Columns never exported: secrets (hashes, ciphertexts) or another person's data.
    omit: tuple[str, ...] = ()
    #: Rows deletion also reaches beyond ``links`` (a follow of the user).
    also: Callable[[int], Q] | None = None

    def where(self, user_id: int, *, deleting: bool = False) -> Q:
        """The user's rows (plus ``also`` when deleting)."""
        parts = [Q(**{c: user_id}) if isinstance(c, str) else Q(**{c[0]: c[1].format(user_id)}) for c in self.links]
        if deleting and self.also is not None:
            parts.append(self.also(user_id))
        return Q(*parts, join_type=Q.OR)

    def scrubbed(self, user_id: int) -> dict[str, Any]:
        values = {k: (v(user_id) if callable(v) else v) for k, v in self.scrub.items()}
        if self.erasure == Erasure.UNLINK:  # text keys (not nullable) are replaced through ``scrub``
            values.update({c: None for c in self.links if isinstance(c, str)})
        return values


def _none(why: str) -> Policy:
    return Policy(Erasure.NONE, why)


_POST_GONE = {"status": ContentStatus.DELETED, "title": "", "body": "", "body_html": ""}
_COMMENT_GONE = {"status": ContentStatus.DELETED, "body": "", "body_html": ""}

#: Model name (as Tortoise registers it) -> its policy.
REGISTRY: dict[str, Policy] = {
    # accounts
    "User": Policy(Erasure.SCRUB, "The account: kept as an empty pseudonymous row so that orders, ledger "
                   "accounts and threads keep a valid owner.", links=("id",), omit=("password_hash",),
                   scrub={"email": placeholder_email, "nickname": DELETED_NICKNAME, "password_hash": UNUSABLE_PASSWORD,
                          "is_active": False, "personalisation": False, "marketing": False, "follower_count": 0,
                          "last_active_at": None}),
    "AuthSession": Policy(Erasure.SCRUB, "Signed-in devices: revoked (sockets close), address and agent erased.",
                          links=("user_id",), omit=("refresh_hash",), scrub={"user_agent": "", "ip": ""}),
    "Notification": Policy(Erasure.DELETE, "Messages to the user.", links=("user_id",)),
    "OutboxEntry": _none("Transient relay queue of ids and topics; notification text lives in Notification."),
    # commerce
    "Merchant": _none("A shop is a business record; an owner's deletion is refused while it holds money or "
                      "open orders, and an empty shop is suspended (its owner link stays pseudonymous)."),
    "Category": _none("Catalogue."),
    "Product": _none("Catalogue."),
    "CardKey": _none("Stock; a sold key is exported decrypted through its order (the buyer's), not by a user link."),
    "CardKeyReveal": Policy(Erasure.SCRUB, "The audit of who saw which key: kept, the address erased.",
                            links=("user_id",), scrub={"ip": ""}),
    "Order": Policy(Erasure.SCRUB, "Books and the merchant's sales stay; contact, account to top up and the "
                    "guest look-up password are erased.", links=("buyer_id",), omit=("query_password_hash",),
                    scrub={"contact_email": "", "topup_account": "", "query_password_hash": ""}),
    "OrderEvent": _none("An order's transitions; actor and note name roles, not people."),
    "Account": _none("Ledger accounts are named by code (wallet:<id>); balances, no personal fields."),
    "Posting": _none("Ledger postings: reason, reference, memo of the money movement."),
    "Entry": _none("Ledger legs: amounts only."),
    "Payment": Policy(Erasure.KEEP, "Money records (the payer's id, pseudonymous after deletion).",
                      links=("payer_id",)),
    "FriendPayRequest": Policy(Erasure.KEEP, "Who asked and who paid (ids only); an open one means an unpaid "
                               "order, which blocks deletion.", links=("requester_id", "payer_id")),
    "Gift": Policy(Erasure.SCRUB, "The gift's books stay; the sender's message goes. A pending gift the user "
                   "sent blocks deletion (its order is in flight); one sent to them expires and returns to its "
                   "sender as any unclaimed gift.", links=("sender_id", "recipient_id"), omit=("code_digest",),
                   scrub={"message": ""}),
    "MerchantApplication": Policy(Erasure.SCRUB, "The shop application: its contact goes.", links=("applicant_id",),
                                  scrub={"contact": ""}),
    "Withdrawal": Policy(Erasure.KEEP, "A shop's payout (who asked, by id).", links=("requested_by_id",)),
    "SupplierConfig": _none("A shop's supplier endpoint and sealed secret: the shop's, not a person's."),
    "MerchantCoupon": Policy(Erasure.KEEP, "A shop's coupon (who created it, by id).", links=("created_by_id",)),
    # community
    "Post": Policy(Erasure.SCRUB, "Posts are deleted (as their author would) and their text erased; the row "
                   "stays so that comments, answers and counters keep their parent.", links=("author_id",),
                   scrub=_POST_GONE),
    "Topic": _none("Topics and circles."),
    "PostTopic": _none("Which topic a post is in."),
    "Comment": Policy(Erasure.SCRUB, "Comments are deleted and their text erased; the row keeps the thread.",
                      links=("author_id",), scrub=_COMMENT_GONE),
    "PostLike": Policy(Erasure.DELETE, "Likes (the counters drop with them).", links=("user_id",)),
    "CommentLike": Policy(Erasure.DELETE, "Likes (the counters drop with them).", links=("user_id",)),
    "Follow": Policy(Erasure.DELETE, "Whom the user follows, and who follows the user.", links=("follower_id",),
                     also=lambda uid: Q(kind=FollowKind.USER, target_id=uid)),
    "Report": Policy(Erasure.SCRUB, "Reports stay for the moderation record; the reporter's words go.",
                     links=("reporter_id",), scrub={"reason": ""}),
    "ModerationAction": Policy(Erasure.UNLINK, "What a moderator did stays; who did it is unlinked.",
                               links=("moderator_id",)),
    # loyalty
    "PointsEntry": Policy(Erasure.KEEP, "The points ledger (unique per rule and reference: kept so that no "
                          "grant replays); points are forfeited.", links=("user_id",)),
    "PointsBalance": Policy(Erasure.KEEP, "The points ledger's cached balance.", links=("user_id",)),
    "CheckIn": Policy(Erasure.DELETE, "Daily check-ins (a visit history).", links=("user_id",)),
    "Coupon": _none("Coupon definitions."),
    "UserCoupon": Policy(Erasure.KEEP, "Issued coupons: issue counts and orders refer to them.",
                         links=("user_id",)),
    "Task": _none("Task definitions."),
    "TaskProgress": Policy(Erasure.DELETE, "Task progress.", links=("user_id",)),
    "InviteCode": Policy(Erasure.DELETE, "The user's invite code.", links=("user_id",)),
    "Referral": Policy(Erasure.SCRUB, "Who invited whom stays for the rewards' books; the invitee's address and "
                       "device go (and are never exported: the inviter would see them).",
                       links=("inviter_id", "invitee_id"), omit=("ip", "device_id"), scrub={"ip": "", "device_id": ""}),
    # lifecycle: campaigns and surveys
    "Campaign": _none("A campaign's definition (audience, offer, message to everyone in it)."),
    "CampaignMember": Policy(Erasure.KEEP, "Who a campaign reached or held out (ids only): the uplift's books "
                             "and the frequency cap.", links=("user_id",)),
    "MarketingCap": Policy(Erasure.DELETE, "When the user was last sent a marketing message.", links=("user_id",)),
    "SegmentSize": _none("Daily counts of users per segment (aggregates)."),
    "Survey": Policy(Erasure.SCRUB, "The satisfaction score stays in the aggregate NPS; the user's words go.",
                     links=("user_id",), scrub={"comment": ""}),
    # trust
    "LateDeliveryCompensation": Policy(Erasure.KEEP, "Compensation paid (money records).", links=("buyer_id",)),
    "TradeEvent": _none("Trade-log leaves name no person (subscriptions/outbox.trade)."),
    "TradeLeaf": _none("Trade-log leaves name no person."),
    "TradeNode": _none("Merkle hashes."),
    "TradeHead": _none("Signed tree heads."),
    "Ticket": Policy(Erasure.KEEP, "After-sales tickets stay with the shop (ids only); the user's words are "
                     "in TicketEntry.", links=("buyer_id",)),
    "TicketEntry": Policy(Erasure.SCRUB, "The user's messages in a ticket are erased.", links=("author_id",),
                          scrub={"body": ""}),
    "Claim": Policy(Erasure.SCRUB, "Claims stay for the money decided; the buyer's message goes.",
                    links=("buyer_id",), scrub={"message": ""}),
    # discovery
    "BehaviourEvent": Policy(Erasure.UNLINK, "Kept for anonymous aggregates: user and device unlinked (every "
                             "event of the user's devices too).", links=("user_id",),
                             scrub={"device_id": None, "personalised": False}),
    "DailyEventAggregate": _none("Anonymous daily counts."),
    "SearchDocument": _none("Index of products and visible posts; a deleted post leaves it."),
    "TrendingTerm": _none("Anonymous counts of search terms."),
    "RecommendationList": Policy(Erasure.DELETE, "The user's precomputed HOME list.", links=(("owner", "u:{}"),)),
    "RecommendationModel": _none("Training statistics."),
    # lifecycle
    "Experiment": _none("Experiment definitions."),
    "ExperimentExposure": Policy(Erasure.UNLINK, "Arm counts stay; the unit is unlinked.",
                                 links=("user_id", ("unit", "user:{}")),
                                 scrub={"device_id": None, "unit": lambda _: f"erased:{secrets.token_hex(8)}"}),
    "SegmentRule": Policy(Erasure.KEEP, "Staff's segment rules (who edited, by id).", links=("updated_by_id",)),
    "BuyerRfm": Policy(Erasure.DELETE, "A profile of the buyer.", links=("user_id",)),
    "ChurnModel": _none("Model parameters."),
    "ChurnScore": Policy(Erasure.DELETE, "A profile of the buyer.", links=("user_id",)),
    # repurchase
    "ProductPlan": Policy(Erasure.SCRUB, "Plans are cancelled; the account to top up goes.", links=("buyer_id",),
                          scrub={"topup_account": ""}),
    "PlanRenewal": _none("A plan's renewals (the plan names the buyer)."),
    "RenewalReminder": Policy(Erasure.DELETE, "Reminders sent to the user.", links=("user_id",)),
    "Birthday": Policy(Erasure.DELETE, "The user's birthday.", links=("user_id",)),
    "BirthdayGrant": Policy(Erasure.DELETE, "Birthday grants (they date the birthday).", links=("user_id",)),
}


def link_columns(policy: Policy) -> list[str]:
    return [c if isinstance(c, str) else c[0] for c in policy.links]
