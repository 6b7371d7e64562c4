"""Posts of five kinds: written, edited, deleted, listed, and published when they become visible.

* Counters. A product's ``rating_sum``/``review_count`` and a topic's ``post_count`` move only
  with F() updates inside the transaction of the change that justifies them, and only when
  that change really happened: a status change made by a status-conditional UPDATE that hit
  one row. So concurrent or repeated requests count once, and a review hidden twice is
  subtracted once.
* A product's rating counts VISIBLE REVIEWs by verified buyers only (a delivered or
  completed order of the product when the review was written).
* Everything a post causes elsewhere (feed fan-out, the live feed, loyalty points) leaves
  through the outbox in the same transaction, and only when the post is visible: a held post
  publishes when a moderator releases it (``publish_post``, called by moderation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import F

from models.commerce.catalog import Product
from models.commerce.orders import Order
from models.community.moderation import ModerationAction
from models.community.posts import ContentStatus, Post, PostKind
from models.community.topics import PostTopic, Topic
from models.discovery.search import SearchKind
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor, require
from resolvers.accounts.permissions import Action
from resolvers.community import content, topics
from resolvers.discovery import indexing
from resolvers.community.visibility import listable, visible_post, visible_product
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate
from subscriptions import cache_tags, jobs, outbox
from subscriptions import topics as bus_topics

TITLE_MAX = 120
POST_BODY_MAX = 20_000


async def get_posts(ids: list[int]) -> list[Post | None]:
    """Batch load (DataLoader): posts by id, in the order asked."""
    found = {p.id: p for p in await Post.filter(id__in=ids)}
    return [found.get(i) for i in ids]


# -- status and counters (also used by moderation) --------------------------------------


def _counts_in_rating(post: Post) -> bool:
    return post.kind == PostKind.REVIEW and post.verified_purchase and post.product_id is not None and bool(post.rating)


async def _review_delta(post: Post, sign: int, rating: int | None = None) -> None:
    """Add (+1) or remove (-1) a counted review from its product's rating."""
    if not _counts_in_rating(post):
        return
    value = rating if rating is not None else post.rating
    await Product.filter(id=post.product_id).update(
        rating_sum=F("rating_sum") + sign * int(value or 0), review_count=F("review_count") + sign
    )
    cache_tags.touch(cache_tags.product(post.product_id))


async def move_post(post: Post, target: ContentStatus) -> bool:
    """Change a post's status if it is still what we read; keep the counters. Inside atomic()."""
    if post.status == target:
        return False
    updated = await Post.filter(id=post.id, status=post.status).update(status=target)
    if updated != 1:
        return False
    was_visible = post.status == ContentStatus.VISIBLE
    post.status = target
    if was_visible:
        await _review_delta(post, -1)
    elif target == ContentStatus.VISIBLE:
        await _review_delta(post, +1)
    return True


async def publish_post(post: Post) -> None:
    """A post became visible (created, or released by a moderator): feeds, live feed, points."""
    slugs = [t.slug for t in (await topics.topics_of_posts([post.id]))[0]]
    await outbox.enqueue(jobs.fan_out_post(post.id))
    await outbox.emit(bus_topics.LIVE_POSTS, {"post": post.id, "topics": slugs})
    reference = f"post:{post.id}"
    await outbox.enqueue(jobs.loyalty_event(post.author_id, "POST_CREATED", reference))
    if post.kind == PostKind.SHOWCASE and post.order_id is not None:
        await outbox.enqueue(
            jobs.loyalty_event(post.author_id, "SHOWCASE_CREATED", reference, order_id=post.order_id)
        )
    if post.kind == PostKind.REVIEW and post.verified_purchase and post.product_id is not None:
        # Keyed on the product, not the post: a review deleted and written again (or released
        # after a hold) earns once per (author, product).
        await outbox.enqueue(
            jobs.loyalty_event(post.author_id, "REVIEW_VERIFIED", review_reference(post.product_id))
        )


def review_reference(product_id: int) -> str:
    """What a verified review's points are keyed on (with its author)."""
    return f"review:product:{product_id}"


# -- writing and listing ----------------------------------------------------------------


@dataclass(frozen=True)
class NewPost:
    kind: PostKind
    title: str
    body: str
    product_id: int | None = None
    order_id: int | None = None
    rating: int | None = None
    topics: list[str] = field(default_factory=list)


async def create_post(actor: Actor, new: NewPost) -> Post:
    user = require(actor)
    title = content.clean_line(new.title, "title", maximum=TITLE_MAX)
    body = content.clean_markdown(new.body, "body", maximum=POST_BODY_MAX)
    screened = content.screen({"title": title, "body": body})
    title, body = screened.texts["title"], screened.texts["body"]
    slugs = topics.topic_slugs(new.topics)
    if new.rating is not None and new.kind != PostKind.REVIEW:
        raise invalid("rating", "Only a REVIEW has a rating.")
    if new.order_id is not None and new.kind != PostKind.SHOWCASE:
        raise invalid("orderId", "Only a SHOWCASE comes from an order.")

    product_id: int | None = None
    order_id: int | None = None
    verified = False
    if new.kind == PostKind.SHOWCASE:
        if new.order_id is None:
            raise invalid("orderId", "A SHOWCASE shows one of your delivered orders: give its orderId.")
        order = await Order.filter(id=new.order_id, buyer_id=user.id).first()
        if order is None:  # someone else's order looks like no order at all
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such order of yours.", "orderId")
        if order.status not in topics.BOUGHT:
            raise UserFacingError(ErrorCode.INVALID_STATE, "Show an order once it is delivered.", "orderId")
        if new.product_id is not None and new.product_id != order.product_id:
            raise invalid("productId", "A SHOWCASE is about the product of its order.")
        if await Post.filter(order_id=order.id, kind=PostKind.SHOWCASE).exclude(status=ContentStatus.DELETED).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "This order already has a showcase.", "orderId")
        product_id, order_id, verified = order.product_id, order.id, True
    elif new.product_id is not None:
        product_id = (await visible_product(actor, new.product_id)).id

    if new.kind == PostKind.REVIEW:
        if product_id is None:
            raise invalid("productId", "A REVIEW is about a product: give its productId.")
        if new.rating is None or not 1 <= new.rating <= 5:
            raise invalid("rating", "Rate from 1 to 5.")
        if await Post.filter(author_id=user.id, product_id=product_id, kind=PostKind.REVIEW).exclude(
            status=ContentStatus.DELETED
        ).exists():
            raise UserFacingError(
                ErrorCode.DUPLICATE, "You already reviewed this product: edit that review instead.", "productId"
            )
        verified = await topics.is_buyer(user.id, product_id)

    status = ContentStatus.HELD if screened.hold_words else ContentStatus.VISIBLE
    async with outbox.atomic():
        tagged = await topics.topics_for_post(actor, user, slugs)
        await content.throttle(user, "post")  # last: a refused request does not use up the allowance
        post = await Post.create(
            author_id=user.id, kind=new.kind, title=title, body=body, body_html=content.render(body),
            product_id=product_id, order_id=order_id, rating=new.rating, verified_purchase=verified,
            status=status,
        )
        for topic in tagged:
            await PostTopic.create(post_id=post.id, topic_id=topic.id)
            await Topic.filter(id=topic.id).update(post_count=F("post_count") + 1)
        await indexing.index_post(post.id)  # in the post's transaction: searchable once committed
        if status == ContentStatus.HELD:
            await content.hold("POST", post.id, screened.hold_words)
        else:
            await _review_delta(post, +1)
            await publish_post(post)
    return post


async def edit_post(
    actor: Actor, post_id: int, *, title: str | None = None, body: str | None = None, rating: int | None = None
) -> Post:
    """The author changes the title, body or (REVIEW) rating. A visible post edited into a
    held word goes back to the moderators."""
    user = require(actor)
    post = await visible_post(actor, post_id)
    if post is None or post.status == ContentStatus.DELETED:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such post.", "postId")
    if post.author_id != user.id:
        raise UserFacingError(ErrorCode.FORBIDDEN, "Only the author edits a post.", "postId")
    if post.status == ContentStatus.HIDDEN:
        raise UserFacingError(ErrorCode.INVALID_STATE, "A moderator hid this post; it cannot be edited.", "postId")
    if title is None and body is None and rating is None:
        raise invalid("postId", "Give a new title, body or rating.")
    if rating is not None and post.kind != PostKind.REVIEW:
        raise invalid("rating", "Only a REVIEW has a rating.")
    if rating is not None and not 1 <= rating <= 5:
        raise invalid("rating", "Rate from 1 to 5.")
    new_title = content.clean_line(title, "title", maximum=TITLE_MAX) if title is not None else post.title
    new_body = content.clean_markdown(body, "body", maximum=POST_BODY_MAX) if body is not None else post.body
    screened = content.screen({"title": new_title, "body": new_body})
    new_rating = rating if rating is not None else post.rating
    changes: dict[str, Any] = {
        "title": screened.texts["title"],
        "body": screened.texts["body"],
        "body_html": content.render(screened.texts["body"]),
        "rating": new_rating,
        "edited_at": datetime.now(UTC),
    }
    async with outbox.atomic():
        # Conditional on what we read, so concurrent edits cannot skew the product's rating.
        updated = await Post.filter(id=post.id, status=post.status, rating=post.rating).update(**changes)
        if updated != 1:
            raise UserFacingError(ErrorCode.INVALID_STATE, "The post changed meanwhile; try again.", "postId")
        old_rating = post.rating
        for name, value in changes.items():
            setattr(post, name, value)
        await indexing.index_post(post.id)
        if post.status == ContentStatus.VISIBLE and new_rating != old_rating and _counts_in_rating(post):
            await Product.filter(id=post.product_id).update(rating_sum=F("rating_sum") + (new_rating - old_rating))
            cache_tags.touch(cache_tags.product(post.product_id))
        if screened.hold_words and post.status == ContentStatus.VISIBLE:
            await move_post(post, ContentStatus.HELD)
            await content.hold("POST", post.id, screened.hold_words)
    return post


async def delete_post(actor: Actor, post_id: int) -> Post:
    """Soft delete, by the author or staff."""
    user = require(actor)
    post = await visible_post(actor, post_id)
    if post is None or post.status == ContentStatus.DELETED:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such post.", "postId")
    permissions.require(actor, Action.DELETE_POST, owner_id=post.author_id)
    async with outbox.atomic():
        if not await move_post(post, ContentStatus.DELETED):
            raise UserFacingError(ErrorCode.INVALID_STATE, "The post changed meanwhile; try again.", "postId")
        await indexing.forget(SearchKind.POST, post.id)
        topic_ids = await PostTopic.filter(post_id=post.id).values_list("topic_id", flat=True)
        if topic_ids:
            await Topic.filter(id__in=list(topic_ids)).update(post_count=F("post_count") - 1)
        if user.id != post.author_id:
            await ModerationAction.create(
                moderator_id=user.id, target_kind="POST", target_id=post.id, action="DELETE", reason="deleted by staff"
            )
    return post


@dataclass(frozen=True)
class PostFilter:
    kind: PostKind | None = None
    author_id: int | None = None
    product_id: int | None = None
    topic: str | None = None


async def list_posts(actor: Actor, filter: PostFilter | None = None, **page: Any) -> Page[Post]:
    """Newest first; what ``listable`` shows the actor."""
    filter = filter or PostFilter()
    queryset = Post.filter(listable(actor))
    if filter.kind is not None:
        queryset = queryset.filter(kind=filter.kind)
    if filter.author_id is not None:
        queryset = queryset.filter(author_id=filter.author_id)
    if filter.product_id is not None:
        queryset = queryset.filter(product_id=filter.product_id)
    if filter.topic is not None:
        try:
            (slug,) = topics.topic_slugs([filter.topic])
        except UserFacingError:
            raise invalid("filter.topic", "No topic is named like that.") from None
        queryset = queryset.filter(id__in=topics.posts_in_topic(slug))
    return await paginate(queryset, newest_first=True, **page)
