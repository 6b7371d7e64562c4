"""Threaded comments: written, listed, moved between statuses and published.

A thread is a materialized path: a comment's path is its parent's path plus its own
zero-padded id, so a thread sorts and slices by path. A post's ``comment_count`` counts its
VISIBLE comments and moves only with a status change that really happened (a
status-conditional UPDATE that hit one row). Everything a comment causes elsewhere (its
thread's live event, replies, mentions) leaves through the outbox in the same transaction,
and only when the comment is visible: a held one publishes when a moderator releases it.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import F

from models.accounts.users import User
from models.community.comments import Comment
from models.community.posts import ContentStatus, Post, PostKind
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.community import content
from resolvers.community.visibility import listable, live_post, visible_product
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate, paginate_by, parse_int
from subscriptions import outbox, topics

COMMENT_BODY_MAX = 5_000
#: Comments nest at most this many levels (depth 0 .. MAX_DEPTH - 1). A reply to a comment on
#: the deepest level attaches to that comment's parent, i.e. continues the thread beside it.
MAX_DEPTH = 8
#: Width of one materialized-path segment: a zero-padded comment id.
PATH_SEGMENT = 10
MAX_MENTIONS = 10

_MENTION = re.compile(r"(?<![\w@])@([\w.\-]{1,40})")
_HOT_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


async def get_comments(ids: list[int]) -> list[Comment | None]:
    """Batch load (DataLoader): comments by id, in the order asked."""
    found = {c.id: c for c in await Comment.filter(id__in=ids)}
    return [found.get(i) for i in ids]


def hot_score(likes: int, created_at: datetime) -> float:
    """Reddit's hot score: fixed at creation, raised by likes; ten likes weigh 12.5 hours."""
    return round(math.log10(max(likes, 1)) + (created_at - _HOT_EPOCH).total_seconds() / 45000, 7)


async def rerank(comment_id: int) -> None:
    """Refresh a comment's hot score after its like count moved."""
    # Runs after the like_count update in the same transaction: the row is ours until commit.
    row = await Comment.filter(id=comment_id).values("like_count", "created_at")
    if row:
        await Comment.filter(id=comment_id).update(hot_rank=hot_score(row[0]["like_count"], row[0]["created_at"]))


# -- status (also used by moderation) ---------------------------------------------------


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


# -- writing and listing ----------------------------------------------------------------


async def add_comment(
    actor: Actor, post_id: int, body: str, *, parent_id: int | None = None, product_id: int | None = None
) -> Comment:
    user = require(actor)
    text = content.clean_markdown(body, "body", maximum=COMMENT_BODY_MAX)
    screened = content.screen({"body": text})
    text = screened.texts["body"]
    post = await live_post(actor, post_id)
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
        product = await visible_product(actor, product_id)
        if product.merchant.owner_id != user.id and not user.is_staff:
            raise UserFacingError(ErrorCode.FORBIDDEN, "Link one of your own shop's products.", "productId")

    status = ContentStatus.HELD if screened.hold_words else ContentStatus.VISIBLE
    now = datetime.now(UTC)
    async with outbox.atomic():
        await content.throttle(user, "comment")
        comment = await Comment.create(
            post_id=post.id, author_id=user.id, parent_id=attach.id if attach else None,
            depth=attach.depth + 1 if attach else 0, body=text, body_html=content.render(text),
            product_id=product_id, status=status, hot_rank=hot_score(0, now),
        )
        # The path needs the id: set in the same transaction, before anyone can read the row.
        comment.path = (f"{attach.path}." if attach else "") + f"{comment.id:0{PATH_SEGMENT}d}"
        await Comment.filter(id=comment.id).update(path=comment.path)
        if status == ContentStatus.HELD:
            await content.hold("COMMENT", comment.id, screened.hold_words)
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
