"""Topics and purchaser circles.

A topic is a tag, created on first use. A product's circle is the topic ``circle-<id>``:
only the product's buyers (a delivered or completed order of it), its shop and staff post
in it, and a buyer joins it by following the topic.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery
from tortoise.functions import Count

from models.discovery.events import EventKind
from models.accounts.users import User
from models.commerce.catalog import Product
from models.commerce.orders import Order, OrderStatus
from models.community.follows import Follow, FollowKind
from models.community.topics import PostTopic, Topic
from resolvers.accounts.auth import Actor, require
from resolvers.community.visibility import visible_product
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import outbox

MAX_TOPICS = 5
TOPIC_SLUG_MAX = 40
#: Buyers of a product: a delivered or completed order of it.
BOUGHT = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
CIRCLE_PREFIX = "circle-"

_TOPIC_SLUG = re.compile(r"^[^\W_]+(?:-[^\W_]+)*$")
_CIRCLE_SLUG = re.compile(r"^circle-(\d{1,18})$")


# -- batch loads (DataLoaders) ----------------------------------------------------------


async def get_topics(ids: list[int]) -> list[Topic | None]:
    found = {t.id: t for t in await Topic.filter(id__in=ids)}
    return [found.get(i) for i in ids]


async def topics_of_posts(post_ids: list[int]) -> list[list[Topic]]:
    found: dict[int, list[Topic]] = defaultdict(list)
    for link in await PostTopic.filter(post_id__in=post_ids).select_related("topic").order_by("id"):
        found[link.post_id].append(link.topic)
    return [found.get(i, []) for i in post_ids]


async def buyer_counts(product_ids: list[int]) -> list[int]:
    """Distinct buyers with a delivered or completed order, per product: one grouped query."""
    rows = (
        await Order.filter(product_id__in=product_ids, status__in=list(BOUGHT), buyer_id__isnull=False)
        .annotate(buyers=Count("buyer_id", distinct=True))
        .group_by("product_id")
        .values("product_id", "buyers")
    )
    counts = {row["product_id"]: row["buyers"] for row in rows}
    return [int(counts.get(i, 0)) for i in product_ids]


async def circles(product_ids: list[int]) -> list[Topic | None]:
    """Each product's circle topic, created on first use (None for a missing product)."""
    slugs = {circle_slug(i): i for i in product_ids}
    found = {t.product_id: t for t in await Topic.filter(slug__in=list(slugs))}
    missing = [i for i in product_ids if i not in found]
    if missing:
        for product in await Product.filter(id__in=missing):
            found[product.id] = await ensure_circle(product)
    return [found.get(i) for i in product_ids]


# -- topics -----------------------------------------------------------------------------


def topic_slugs(raw: Iterable[str]) -> list[str]:
    """Normalised, distinct topic slugs (at most MAX_TOPICS): lower-case words joined by '-'."""
    slugs: list[str] = []
    for item in raw:
        slug = unicodedata.normalize("NFKC", item).strip().lstrip("#").strip().lower()
        slug = re.sub(r"[\s_]+", "-", slug)
        if not 1 <= len(slug) <= TOPIC_SLUG_MAX or not _TOPIC_SLUG.match(slug):
            raise invalid("topics", f"A topic is 1 to {TOPIC_SLUG_MAX} letters or digits, words joined by '-'.")
        if slug not in slugs:
            slugs.append(slug)
    if len(slugs) > MAX_TOPICS:
        raise invalid("topics", f"At most {MAX_TOPICS} topics per post.")
    return slugs


async def topic_by_slug(slug: str) -> Topic | None:
    """The topic named ``slug`` (normalised first); None for a name no topic can have."""
    try:
        (clean,) = topic_slugs([slug])
    except UserFacingError:
        return None
    return await Topic.filter(slug=clean).first()


def posts_in_topic(slug: str) -> Subquery:
    """Ids of the posts tagged with the topic ``slug`` (as given, not normalised)."""
    return Subquery(PostTopic.filter(topic__slug=slug).values("post_id"))


async def _get_or_create_topic(slug: str, product_id: int | None = None, name: str | None = None) -> Topic:
    found = await Topic.filter(slug=slug).first()
    if found is not None:
        return found
    try:
        async with outbox.atomic():  # a savepoint: a concurrent creator may win
            return await Topic.create(slug=slug, name=(name or slug)[:60], product_id=product_id)
    except IntegrityError:
        return await Topic.get(slug=slug)


async def topics_for_post(actor: Actor, user: User, slugs: list[str]) -> list[Topic]:
    """The topics to tag, created on first use. A circle topic is for the product's buyers
    (and its shop and staff): others get FORBIDDEN."""
    topics: list[Topic] = []
    for slug in slugs:
        circle = _CIRCLE_SLUG.match(slug)
        if circle is not None:
            product = await visible_product(actor, int(circle.group(1)), "topics")
            if not await _may_talk_in_circle(user, product):
                raise UserFacingError(
                    ErrorCode.FORBIDDEN, "Only buyers of this product post in its circle.", "topics"
                )
            topics.append(await ensure_circle(product))
        else:
            topics.append(await _get_or_create_topic(slug))
    return topics


# -- purchaser circles ------------------------------------------------------------------


def circle_slug(product_id: int) -> str:
    return f"{CIRCLE_PREFIX}{product_id}"


async def is_buyer(user_id: int, product_id: int) -> bool:
    return await Order.filter(buyer_id=user_id, product_id=product_id, status__in=list(BOUGHT)).exists()


async def ensure_circle(product: Product) -> Topic:
    return await _get_or_create_topic(
        circle_slug(product.id), product_id=product.id, name=f"{product.title[:50]} circle"
    )


async def _may_talk_in_circle(user: User, product: Product) -> bool:
    if user.is_staff:
        return True
    # ``product`` comes with its merchant (select_related).
    return product.merchant.owner_id == user.id or await is_buyer(user.id, product.id)


async def join_circle(actor: Actor, product_id: int) -> Topic:
    """A buyer of the product follows its circle topic (idempotent)."""
    user = require(actor)
    product = await visible_product(actor, product_id)
    if not await is_buyer(user.id, product.id):
        raise UserFacingError(ErrorCode.FORBIDDEN, "Only buyers of this product join its circle.", "productId")
    async with outbox.atomic():
        topic = await ensure_circle(product)
        try:
            async with outbox.atomic():
                row = await Follow.create(follower_id=user.id, kind=FollowKind.TOPIC, target_id=topic.id)
                await outbox.track(EventKind.CIRCLE_JOINED, f"circle:{row.id}", user_id=user.id,
                                   topic_id=topic.id, product_id=product.id)
        except IntegrityError:
            pass  # already a member
    return topic


async def in_circle(user_id: int, topic_id: int) -> bool:
    return await Follow.filter(follower_id=user_id, kind=FollowKind.TOPIC, target_id=topic_id).exists()
