"""The community's use cases: posts of five kinds, threaded comments, likes, topics and
purchaser circles.

Rules that hold everywhere here:

* Visibility. VISIBLE content is public; HELD (waiting for a moderator) and HIDDEN (hidden
  by one) are seen by their author and by staff only; DELETED by staff only. Lists show
  VISIBLE content plus the viewer's own HELD and HIDDEN items.
* Counters. ``Post.like_count``, ``Comment.like_count``, ``Post.comment_count`` and a
  product's ``rating_sum``/``review_count`` move only with F() updates inside the
  transaction of the change that justifies them, and only when that change really happened:
  a like row that was inserted (a duplicate insert fails in a savepoint), a like row that
  was deleted, a status change made by a status-conditional UPDATE that hit one row. So
  concurrent or repeated requests count once, and a review hidden twice is subtracted once.
* A product's rating counts VISIBLE REVIEWs by verified buyers only (a delivered or
  completed order of the product when the review was written).
* Everything a post or comment causes elsewhere (feed fan-out, live events, replies,
  mentions, loyalty points) leaves through the outbox in the same transaction, and only
  when the content is visible: held content publishes when a moderator releases it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery
from tortoise.functions import Count

from kameng import runtime
from kameng.settings import get_settings
from models.accounts.users import User
from models.commerce.catalog import Product
from models.community.community import (
    Comment,
    CommentLike,
    ContentStatus,
    Follow,
    FollowKind,
    ModerationAction,
    Post,
    PostKind,
    PostLike,
    PostTopic,
    Topic,
)
from models.commerce.orders import Order, OrderStatus
from resolvers.commerce import catalog
from resolvers.community import content
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate, paginate_by, parse_int
from subscriptions import outbox
from subscriptions import jobs, topics

TITLE_MAX = 120
POST_BODY_MAX = 20_000
COMMENT_BODY_MAX = 5_000
MAX_TOPICS = 5
TOPIC_SLUG_MAX = 40
#: Comments nest at most this many levels (depth 0 .. MAX_DEPTH - 1). A reply to a comment on
#: the deepest level attaches to that comment's parent, i.e. continues the thread beside it.
MAX_DEPTH = 8
#: Width of one materialized-path segment: a zero-padded comment id.
PATH_SEGMENT = 10
MAX_MENTIONS = 10
#: Buyers of a product: a delivered or completed order of it.
BOUGHT = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
CIRCLE_PREFIX = "circle-"

_TOPIC_SLUG = re.compile(r"^[^\W_]+(?:-[^\W_]+)*$")
_CIRCLE_SLUG = re.compile(r"^circle-(\d{1,18})$")
_MENTION = re.compile(r"(?<![\w@])@([\w.\-]{1,40})")
_HOT_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


# -- visibility -------------------------------------------------------------------------


def can_see(actor: Actor, status: ContentStatus, author_id: int) -> bool:
    if status == ContentStatus.VISIBLE:
        return True
    user = actor.user
    if user is None:
        return False
    if user.is_staff:
        return True
    return user.id == author_id and status in (ContentStatus.HELD, ContentStatus.HIDDEN)


def listable(actor: Actor) -> Q:
    """What lists show the actor: VISIBLE content and the actor's own HELD/HIDDEN items."""
    shown = Q(status=ContentStatus.VISIBLE)
    if actor.user is not None:
        shown |= Q(author_id=actor.user.id, status__in=[ContentStatus.HELD, ContentStatus.HIDDEN])
    return shown


async def visible_post(actor: Actor, post_id: int) -> Post | None:
    post = await Post.filter(id=post_id).first()
    return post if post is not None and can_see(actor, post.status, post.author_id) else None


async def visible_comment(actor: Actor, comment_id: int) -> Comment | None:
    comment = await Comment.filter(id=comment_id).select_related("post").first()
    if comment is None or not can_see(actor, comment.status, comment.author_id):
        return None
    return comment if can_see(actor, comment.post.status, comment.post.author_id) else None


async def _live_post(actor: Actor, post_id: int, field: str = "postId") -> Post:
    """A VISIBLE post (likes, comments, answers act only on those), or NOT_FOUND."""
    post = await visible_post(actor, post_id)
    if post is None or post.status == ContentStatus.DELETED:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such post.", field)
    if post.status != ContentStatus.VISIBLE:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This post is not public at the moment.", field)
    return post


# -- batch loads (DataLoaders) ----------------------------------------------------------


async def get_posts(ids: list[int]) -> list[Post | None]:
    found = {p.id: p for p in await Post.filter(id__in=ids)}
    return [found.get(i) for i in ids]


async def get_comments(ids: list[int]) -> list[Comment | None]:
    found = {c.id: c for c in await Comment.filter(id__in=ids)}
    return [found.get(i) for i in ids]


async def get_topics(ids: list[int]) -> list[Topic | None]:
    found = {t.id: t for t in await Topic.filter(id__in=ids)}
    return [found.get(i) for i in ids]


async def posts_liked(keys: list[tuple[int, int]]) -> list[bool]:
    """(user id, post id) -> liked; one query per distinct user (one per request)."""
    by_user: dict[int, list[int]] = defaultdict(list)
    for user_id, post_id in keys:
        by_user[user_id].append(post_id)
    liked: set[tuple[int, int]] = set()
    for user_id, post_ids in by_user.items():
        rows = await PostLike.filter(user_id=user_id, post_id__in=post_ids).values_list("post_id", flat=True)
        liked.update((user_id, post_id) for post_id in rows)
    return [key in liked for key in keys]


async def comments_liked(keys: list[tuple[int, int]]) -> list[bool]:
    by_user: dict[int, list[int]] = defaultdict(list)
    for user_id, comment_id in keys:
        by_user[user_id].append(comment_id)
    liked: set[tuple[int, int]] = set()
    for user_id, comment_ids in by_user.items():
        rows = await CommentLike.filter(user_id=user_id, comment_id__in=comment_ids).values_list(
            "comment_id", flat=True
        )
        liked.update((user_id, comment_id) for comment_id in rows)
    return [key in liked for key in keys]


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


# -- helpers ----------------------------------------------------------------------------


def circle_slug(product_id: int) -> str:
    return f"{CIRCLE_PREFIX}{product_id}"


def hot_score(likes: int, created_at: datetime) -> float:
    """Reddit's hot score: fixed at creation, raised by likes; ten likes weigh 12.5 hours."""
    return round(math.log10(max(likes, 1)) + (created_at - _HOT_EPOCH).total_seconds() / 45000, 7)


async def is_buyer(user_id: int, product_id: int) -> bool:
    return await Order.filter(buyer_id=user_id, product_id=product_id, status__in=list(BOUGHT)).exists()


async def _throttle(user: User, kind: str) -> None:
    """Posting limits per user, stricter for new accounts; staff are not limited."""
    if user.is_staff:
        return
    settings = get_settings()
    new = user.created_at > datetime.now(UTC) - timedelta(hours=settings.new_account_hours)
    if kind == "post":
        limit = settings.post_limit_new_account if new else settings.post_limit
    else:
        limit = settings.comment_limit_new_account if new else settings.comment_limit
    if not await runtime.limiter().hit(limit, f"community:{kind}", str(user.id)):
        what = "posts" if kind == "post" else "comments"
        raise UserFacingError(ErrorCode.RATE_LIMITED, f"You have written too many {what} lately; try again later.")


async def _visible_product(actor: Actor, product_id: int, field: str = "productId") -> Product:
    product = await Product.filter(id=product_id).select_related("merchant").first()
    if product is None or not catalog.product_visible(actor, product, product.merchant):
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", field)
    return product


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


async def _get_or_create_topic(slug: str, product_id: int | None = None, name: str | None = None) -> Topic:
    found = await Topic.filter(slug=slug).first()
    if found is not None:
        return found
    try:
        async with outbox.atomic():  # a savepoint: a concurrent creator may win
            return await Topic.create(slug=slug, name=(name or slug)[:60], product_id=product_id)
    except IntegrityError:
        return await Topic.get(slug=slug)


async def ensure_circle(product: Product) -> Topic:
    return await _get_or_create_topic(
        circle_slug(product.id), product_id=product.id, name=f"{product.title[:50]} circle"
    )


async def _may_talk_in_circle(user: User, product: Product) -> bool:
    if user.is_staff:
        return True
    # ``product`` comes with its merchant (select_related).
    return product.merchant.owner_id == user.id or await is_buyer(user.id, product.id)


async def _topics_for_post(actor: Actor, user: User, slugs: list[str]) -> list[Topic]:
    """The topics to tag, created on first use. A circle topic is for the product's buyers
    (and its shop and staff): others get FORBIDDEN."""
    topics: list[Topic] = []
    for slug in slugs:
        circle = _CIRCLE_SLUG.match(slug)
        if circle is not None:
            product = await _visible_product(actor, int(circle.group(1)), "topics")
            if not await _may_talk_in_circle(user, product):
                raise UserFacingError(
                    ErrorCode.FORBIDDEN, "Only buyers of this product post in its circle.", "topics"
                )
            topics.append(await ensure_circle(product))
        else:
            topics.append(await _get_or_create_topic(slug))
    return topics


async def _hold(kind: str, target_id: int, words: tuple[str, ...]) -> None:
    await ModerationAction.create(
        moderator_id=None, target_kind=kind, target_id=target_id, action="HOLD",
        reason=("sensitive words: " + ", ".join(words))[:300],
    )


async def _loyalty(event: str, user_id: int, reference: str, **extra: Any) -> None:
    await outbox.enqueue(jobs.loyalty_event(user_id, event, reference, **extra))


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


# -- status changes (also used by moderation) ------------------------------------------


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


async def move_comment(comment: Comment, target: ContentStatus) -> bool:
    if comment.status == target:
        return False
    updated = await Comment.filter(id=comment.id, status=comment.status).update(status=target)
    if updated != 1:
        return False
    was_visible = comment.status == ContentStatus.VISIBLE
    comment.status = target
    if was_visible:
        await Post.filter(id=comment.post_id).update(comment_count=F("comment_count") - 1)
    elif target == ContentStatus.VISIBLE:
        await Post.filter(id=comment.post_id).update(comment_count=F("comment_count") + 1)
    return True


async def publish_post(post: Post) -> None:
    """A post became visible (created, or released by a moderator): feeds, live feed, points."""
    slugs = [t.slug for t in (await topics_of_posts([post.id]))[0]]
    await outbox.enqueue(jobs.fan_out_post(post.id))
    await outbox.emit(topics.LIVE_POSTS, {"post": post.id, "topics": slugs})
    reference = f"post:{post.id}"
    await _loyalty("POST_CREATED", post.author_id, reference)
    if post.kind == PostKind.SHOWCASE and post.order_id is not None:
        await _loyalty("SHOWCASE_CREATED", post.author_id, reference, order_id=post.order_id)
    if post.kind == PostKind.REVIEW and post.verified_purchase:
        await _loyalty("REVIEW_VERIFIED", post.author_id, reference)


async def publish_comment(comment: Comment, post: Post) -> None:
    """A comment became visible: its thread's live event, replies and mentions notified."""
    await outbox.emit(topics.post_comments(post.id), {"comment": comment.id})
    commenter = await User.get(id=comment.author_id)
    excerpt = comment.body[:140]
    data = {"postId": post.id, "commentId": comment.id}
    replied: list[int] = []
    parent_author = None
    if comment.parent_id is not None:
        parent = await Comment.filter(id=comment.parent_id).only("id", "author_id").first()
        parent_author = parent.author_id if parent is not None else None
    for uid, what in ((post.author_id, "post"), (parent_author, "comment")):
        if uid is None or uid == comment.author_id or uid in replied:
            continue
        replied.append(uid)
        await outbox.emit(topics.replies(uid), {"comment": comment.id})
        await notifications.notify(
            uid, "REPLY", f"{commenter.nickname} replied to your {what}", excerpt, data,
            dedupe_key=f"reply:{comment.id}:{uid}",
        )
    for uid in await mentioned_users(comment.body):
        if uid == comment.author_id or uid in replied:
            continue
        await notifications.notify(
            uid, "MENTION", f"{commenter.nickname} mentioned you", excerpt, data,
            dedupe_key=f"mention:{comment.id}:{uid}",
        )


async def mentioned_users(text: str) -> list[int]:
    """Ids of the users @mentioned by nickname (at most MAX_MENTIONS). A nickname shared by
    several accounts names nobody in particular and is skipped."""
    names: list[str] = []
    for match in _MENTION.finditer(text):
        name = match.group(1).rstrip(".-")
        if name and name not in names:
            names.append(name)
        if len(names) == MAX_MENTIONS:
            break
    if not names:
        return []
    by_name: dict[str, list[int]] = defaultdict(list)
    for user_id, nickname in await User.filter(nickname__in=names, is_active=True).values_list("id", "nickname"):
        by_name[nickname].append(user_id)
    return [by_name[n][0] for n in names if len(by_name.get(n, [])) == 1]


# -- posts ------------------------------------------------------------------------------


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
    slugs = topic_slugs(new.topics)
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
        if order.status not in BOUGHT:
            raise UserFacingError(ErrorCode.INVALID_STATE, "Show an order once it is delivered.", "orderId")
        if new.product_id is not None and new.product_id != order.product_id:
            raise invalid("productId", "A SHOWCASE is about the product of its order.")
        if await Post.filter(order_id=order.id, kind=PostKind.SHOWCASE).exclude(status=ContentStatus.DELETED).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "This order already has a showcase.", "orderId")
        product_id, order_id, verified = order.product_id, order.id, True
    elif new.product_id is not None:
        product_id = (await _visible_product(actor, new.product_id)).id

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
        verified = await is_buyer(user.id, product_id)

    status = ContentStatus.HELD if screened.hold_words else ContentStatus.VISIBLE
    async with outbox.atomic():
        topics = await _topics_for_post(actor, user, slugs)
        await _throttle(user, "post")  # last: a refused request does not use up the allowance
        post = await Post.create(
            author_id=user.id, kind=new.kind, title=title, body=body, body_html=content.render(body),
            product_id=product_id, order_id=order_id, rating=new.rating, verified_purchase=verified,
            status=status,
        )
        for topic in topics:
            await PostTopic.create(post_id=post.id, topic_id=topic.id)
            await Topic.filter(id=topic.id).update(post_count=F("post_count") + 1)
        if status == ContentStatus.HELD:
            await _hold("POST", post.id, screened.hold_words)
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
        if post.status == ContentStatus.VISIBLE and new_rating != old_rating and _counts_in_rating(post):
            await Product.filter(id=post.product_id).update(rating_sum=F("rating_sum") + (new_rating - old_rating))
        if screened.hold_words and post.status == ContentStatus.VISIBLE:
            await move_post(post, ContentStatus.HELD)
            await _hold("POST", post.id, screened.hold_words)
    return post


async def delete_post(actor: Actor, post_id: int) -> Post:
    """Soft delete, by the author or staff."""
    user = require(actor)
    post = await visible_post(actor, post_id)
    if post is None or post.status == ContentStatus.DELETED:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such post.", "postId")
    require(actor, owner_id=post.author_id)
    async with outbox.atomic():
        if not await move_post(post, ContentStatus.DELETED):
            raise UserFacingError(ErrorCode.INVALID_STATE, "The post changed meanwhile; try again.", "postId")
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
            (slug,) = topic_slugs([filter.topic])
        except UserFacingError:
            raise invalid("filter.topic", "No topic is named like that.") from None
        queryset = queryset.filter(
            id__in=Subquery(PostTopic.filter(topic__slug=slug).values("post_id"))
        )
    return await paginate(queryset, newest_first=True, **page)


# -- comments ---------------------------------------------------------------------------


async def add_comment(
    actor: Actor, post_id: int, body: str, *, parent_id: int | None = None, product_id: int | None = None
) -> Comment:
    user = require(actor)
    text = content.clean_markdown(body, "body", maximum=COMMENT_BODY_MAX)
    screened = content.screen({"body": text})
    text = screened.texts["body"]
    post = await _live_post(actor, post_id)
    attach: Comment | None = None
    if parent_id is not None:
        attach = await Comment.filter(id=parent_id, post_id=post.id, status=ContentStatus.VISIBLE).first()
        if attach is None:
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such comment in this post.", "parentId")
        if attach.depth >= MAX_DEPTH - 1:
            # Deepest level reached: continue the thread beside the comment replied to.
            ancestor_id = int(attach.path.split(".")[MAX_DEPTH - 2])
            attach = await Comment.get(id=ancestor_id)
    if product_id is not None:
        if post.kind != PostKind.DEMAND:
            raise invalid("productId", "Only answers to a DEMAND post link a product.")
        product = await _visible_product(actor, product_id)
        if product.merchant.owner_id != user.id and not user.is_staff:
            raise UserFacingError(ErrorCode.FORBIDDEN, "Link one of your own shop's products.", "productId")

    status = ContentStatus.HELD if screened.hold_words else ContentStatus.VISIBLE
    now = datetime.now(UTC)
    async with outbox.atomic():
        await _throttle(user, "comment")
        comment = await Comment.create(
            post_id=post.id, author_id=user.id, parent_id=attach.id if attach else None,
            depth=attach.depth + 1 if attach else 0, body=text, body_html=content.render(text),
            product_id=product_id, status=status, hot_rank=hot_score(0, now),
        )
        # The path needs the id: set in the same transaction, before anyone can read the row.
        comment.path = (f"{attach.path}." if attach else "") + f"{comment.id:0{PATH_SEGMENT}d}"
        await Comment.filter(id=comment.id).update(path=comment.path)
        if status == ContentStatus.HELD:
            await _hold("COMMENT", comment.id, screened.hold_words)
        else:
            await Post.filter(id=post.id).update(comment_count=F("comment_count") + 1)
            await publish_comment(comment, post)
    return comment


COMMENT_SORTS = ("THREAD", "NEW", "TOP", "HOT")


def _parse_path(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


def _parse_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError
    return float(value)


async def list_comments(actor: Actor, post: Post, sort: str = "THREAD", **page: Any) -> Page[Comment]:
    """One page of a post's comments (at most 100, keyset cursors). THREAD: depth-first by
    materialized path; NEW: newest first; TOP: most liked; HOT: likes and recency."""
    queryset = Comment.filter(post_id=post.id).filter(listable(actor))
    if sort == "NEW":
        return await paginate(queryset, newest_first=True, **page)
    if sort == "TOP":
        return await paginate_by(queryset, "like_count", descending=True, parse=parse_int, **page)
    if sort == "HOT":
        return await paginate_by(queryset, "hot_rank", descending=True, parse=_parse_float, **page)
    return await paginate_by(queryset, "path", descending=False, parse=_parse_path, **page)


# -- likes ------------------------------------------------------------------------------


async def like_post(actor: Actor, post_id: int) -> Post:
    """Idempotent: a repeated like changes nothing and is not an error."""
    user = require(actor)
    post = await _live_post(actor, post_id)
    async with outbox.atomic():
        try:
            async with outbox.atomic():  # savepoint: the unique index decides
                await PostLike.create(user_id=user.id, post_id=post.id)
        except IntegrityError:
            pass
        else:
            await Post.filter(id=post.id).update(like_count=F("like_count") + 1)
            if post.author_id != user.id:
                await _loyalty("LIKE_RECEIVED", post.author_id, f"like:post:{post.id}:{user.id}")
                likes = (await Post.get(id=post.id)).like_count
                others = f" and {likes - 1} other{'s' if likes > 2 else ''}" if likes > 1 else ""
                await notifications.notify_grouped(
                    post.author_id, "LIKES", f"likes:post:{post.id}",
                    f"{user.nickname}{others} liked “{post.title[:60]}”", data={"postId": post.id, "likeCount": likes},
                )
    return await Post.get(id=post.id)


async def unlike_post(actor: Actor, post_id: int) -> Post:
    user = require(actor)
    post = await _live_post(actor, post_id)
    async with outbox.atomic():
        deleted = await PostLike.filter(user_id=user.id, post_id=post.id).delete()
        if deleted:
            await Post.filter(id=post.id).update(like_count=F("like_count") - 1)
    return await Post.get(id=post.id)


async def _live_comment(actor: Actor, comment_id: int, field: str = "commentId") -> Comment:
    comment = await visible_comment(actor, comment_id)
    if comment is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such comment.", field)
    if comment.status != ContentStatus.VISIBLE or comment.post.status != ContentStatus.VISIBLE:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This comment is not public at the moment.", field)
    return comment


async def _rerank(comment_id: int) -> None:
    # Runs after the like_count update in the same transaction: the row is ours until commit.
    row = await Comment.filter(id=comment_id).values("like_count", "created_at")
    if row:
        await Comment.filter(id=comment_id).update(hot_rank=hot_score(row[0]["like_count"], row[0]["created_at"]))


async def like_comment(actor: Actor, comment_id: int) -> Comment:
    user = require(actor)
    comment = await _live_comment(actor, comment_id)
    async with outbox.atomic():
        try:
            async with outbox.atomic():
                await CommentLike.create(user_id=user.id, comment_id=comment.id)
        except IntegrityError:
            pass
        else:
            await Comment.filter(id=comment.id).update(like_count=F("like_count") + 1)
            await _rerank(comment.id)
            if comment.author_id != user.id:
                await _loyalty("LIKE_RECEIVED", comment.author_id, f"like:comment:{comment.id}:{user.id}")
    return await Comment.get(id=comment.id)


async def unlike_comment(actor: Actor, comment_id: int) -> Comment:
    user = require(actor)
    comment = await _live_comment(actor, comment_id)
    async with outbox.atomic():
        deleted = await CommentLike.filter(user_id=user.id, comment_id=comment.id).delete()
        if deleted:
            await Comment.filter(id=comment.id).update(like_count=F("like_count") - 1)
            await _rerank(comment.id)
    return await Comment.get(id=comment.id)


# -- answers and demands ----------------------------------------------------------------


async def _own_post_and_reply(
    actor: Actor, post_id: int, comment_id: int, kind: PostKind
) -> tuple[User, Post, Comment]:
    user = require(actor)
    post = await _live_post(actor, post_id)
    if post.kind != kind:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"This is not a {kind.value} post.", "postId")
    if post.author_id != user.id:
        raise UserFacingError(ErrorCode.FORBIDDEN, "Only the post's author decides this.", "postId")
    comment = await Comment.filter(id=comment_id, post_id=post.id, status=ContentStatus.VISIBLE).first()
    if comment is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such reply to this post.", "commentId")
    return user, post, comment


async def accept_answer(actor: Actor, post_id: int, comment_id: int) -> Post:
    """The author of a QUESTION accepts one answer (final; the same again is a no-op)."""
    user, post, comment = await _own_post_and_reply(actor, post_id, comment_id, PostKind.QUESTION)
    if comment.author_id == user.id:
        raise invalid("commentId", "Accept someone else's answer.")
    if post.accepted_comment_id == comment.id:
        return post
    async with outbox.atomic():
        updated = await Post.filter(id=post.id, accepted_comment_id=None).update(accepted_comment_id=comment.id)
        if updated != 1:
            raise UserFacingError(ErrorCode.INVALID_STATE, "An answer is already accepted.", "commentId")
        await _loyalty("ANSWER_ACCEPTED", comment.author_id, f"answer:{post.id}")
        await notifications.notify(
            comment.author_id, "ANSWER_ACCEPTED", "Your answer was accepted", post.title,
            {"postId": post.id, "commentId": comment.id}, dedupe_key=f"answer:{post.id}",
        )
    return await Post.get(id=post.id)


async def fulfil_demand(actor: Actor, post_id: int, comment_id: int) -> Post:
    """The author of a DEMAND chooses a merchant's reply that links a product (final)."""
    _, post, comment = await _own_post_and_reply(actor, post_id, comment_id, PostKind.DEMAND)
    if comment.product_id is None:
        raise invalid("commentId", "This reply links no product.")
    if post.accepted_comment_id == comment.id:
        return post
    product = await Product.filter(id=comment.product_id).select_related("merchant").first()
    if product is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "The linked product is gone.", "commentId")
    async with outbox.atomic():
        updated = await Post.filter(id=post.id, accepted_comment_id=None).update(
            accepted_comment_id=comment.id, fulfilled_by_product_id=product.id
        )
        if updated != 1:
            raise UserFacingError(ErrorCode.INVALID_STATE, "This demand is already fulfilled.", "commentId")
        await _loyalty("DEMAND_FULFILLED", product.merchant.owner_id, f"demand:{post.id}")
        await notifications.notify(
            comment.author_id, "DEMAND_FULFILLED", "Your product was chosen", post.title,
            {"postId": post.id, "commentId": comment.id, "productId": product.id}, dedupe_key=f"demand:{post.id}",
        )
    return await Post.get(id=post.id)


# -- purchaser circles ------------------------------------------------------------------


async def join_circle(actor: Actor, product_id: int) -> Topic:
    """A buyer of the product follows its circle topic (idempotent)."""
    user = require(actor)
    product = await _visible_product(actor, product_id)
    if not await is_buyer(user.id, product.id):
        raise UserFacingError(ErrorCode.FORBIDDEN, "Only buyers of this product join its circle.", "productId")
    async with outbox.atomic():
        topic = await ensure_circle(product)
        try:
            async with outbox.atomic():
                await Follow.create(follower_id=user.id, kind=FollowKind.TOPIC, target_id=topic.id)
        except IntegrityError:
            pass  # already a member
    return topic


async def in_circle(user_id: int, topic_id: int) -> bool:
    return await Follow.filter(follower_id=user_id, kind=FollowKind.TOPIC, target_id=topic_id).exists()
