"""Follows of users, merchants, products and topics.

Idempotent both ways: following twice leaves one row, unfollowing what is not followed does
nothing. ``User.follower_count`` moves only with a row that was really inserted or deleted
(the unique (follower, kind, target) key and the delete's row count decide, not a read made
beforehand), so concurrent follows and unfollows keep it equal to the number of rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Count

from models.accounts.users import User
from models.commerce.catalog import Product
from models.commerce.merchants import Merchant
from models.community.follows import Follow, FollowKind
from models.community.topics import Topic
from models.discovery.events import EventKind
from resolvers.community.fanout import current_store
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.errors import invalid
from subscriptions import outbox

log = logging.getLogger(__name__)

#: GraphQL type name of a global ID -> what a follow of it is.
KINDS: dict[str, FollowKind] = {
    "User": FollowKind.USER,
    "Merchant": FollowKind.MERCHANT,
    "Product": FollowKind.PRODUCT,
    "Topic": FollowKind.TOPIC,
}
FIELD = "targetId"


@dataclass(frozen=True, slots=True)
class FollowResult:
    kind: FollowKind
    target_id: int
    following: bool
    changed: bool  # False: it already was so (idempotent repeat)


def kind_of(type_name: str) -> FollowKind:
    try:
        return KINDS[type_name]
    except KeyError:
        raise invalid(FIELD, "Only users, merchants, products and topics can be followed.") from None


async def _target_exists(kind: FollowKind, target_id: int) -> bool:
    if kind == FollowKind.USER:
        return await User.filter(id=target_id, is_active=True).exists()
    if kind == FollowKind.MERCHANT:
        return await Merchant.filter(id=target_id).exists()
    if kind == FollowKind.PRODUCT:
        return await Product.filter(id=target_id).exists()
    return await Topic.filter(id=target_id).exists()


async def follow(actor: Actor, type_name: str, target_id: int) -> FollowResult:
    user = require(actor)
    kind = kind_of(type_name)
    if kind == FollowKind.USER and target_id == user.id:
        raise invalid(FIELD, "You cannot follow yourself.")
    if not await _target_exists(kind, target_id):
        raise invalid(FIELD, "Nothing to follow with this ID.")
    created = False
    async with outbox.atomic():
        if not await Follow.filter(follower_id=user.id, kind=kind, target_id=target_id).exists():
            try:
                async with outbox.atomic():  # a savepoint: a lost race must not abort the rest
                    row = await Follow.create(follower_id=user.id, kind=kind, target_id=target_id)
                created = True
            except IntegrityError:
                created = False  # a concurrent request inserted it first
        if created:
            await outbox.track(EventKind.FOLLOWED, f"follow:{row.id}", user_id=user.id, **_followed(kind, target_id))
        if created and kind == FollowKind.USER:
            await User.filter(id=target_id).update(follower_count=F("follower_count") + 1)
            await notifications.notify(
                target_id,
                "FOLLOW",
                f"{user.nickname} followed you",
                data={"userId": user.id},
                dedupe_key=f"follow:{user.id}:{target_id}",  # unfollow + follow again: once
            )
    if created:
        await _forget_feed(user.id)
    return FollowResult(kind, target_id, following=True, changed=created)


def _followed(kind: FollowKind, target_id: int) -> dict[str, int]:
    """The behaviour event's reference to what was followed (a followed user has no column)."""
    column = {FollowKind.MERCHANT: "merchant_id", FollowKind.PRODUCT: "product_id", FollowKind.TOPIC: "topic_id"}
    return {column[kind]: target_id} if kind in column else {}


async def unfollow(actor: Actor, type_name: str, target_id: int) -> FollowResult:
    user = require(actor)
    kind = kind_of(type_name)
    async with outbox.atomic():
        deleted = await Follow.filter(follower_id=user.id, kind=kind, target_id=target_id).delete()
        if deleted and kind == FollowKind.USER:
            await User.filter(id=target_id).update(follower_count=F("follower_count") - deleted)
    if deleted:
        await _forget_feed(user.id)
    return FollowResult(kind, target_id, following=False, changed=bool(deleted))


async def _forget_feed(user_id: int) -> None:
    """The follow set changed: the cached FOLLOWING feed is rebuilt from the database on its
    next read (which brings in the new followee's earlier posts, or drops the old one's)."""
    store = current_store()
    if store is None:
        return
    try:
        await store.forget(user_id)
    except Exception:  # the follow is committed; a stale cache is the lesser evil than an error
        log.warning("feeds: could not drop the cached feed of user %s", user_id, exc_info=True)


async def following_counts(user_ids: list[int]) -> list[int]:
    """Follows per user, in the order asked (one grouped query)."""
    rows = (
        await Follow.filter(follower_id__in=user_ids)
        .annotate(n=Count("id"))
        .group_by("follower_id")
        .values_list("follower_id", "n")
    )
    counts = {follower: n for follower, n in rows}
    return [counts.get(i, 0) for i in user_ids]


async def is_following(user_id: int, kind: FollowKind, target_ids: list[int]) -> set[int]:
    rows = await Follow.filter(follower_id=user_id, kind=kind, target_id__in=target_ids).values_list(
        "target_id", flat=True
    )
    return set(rows)
