"""Likes of posts and comments.

Idempotent both ways: a like is a row under a unique (user, target) key, so a repeated like
changes nothing and is not an error. ``like_count`` moves only with a row really inserted
(the insert runs in a savepoint) or really deleted, so concurrent requests count once.
"""

from __future__ import annotations

from collections import defaultdict

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from models.community.comments import Comment
from models.community.posts import Post
from models.community.reactions import CommentLike, PostLike
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.community.comments import rerank
from resolvers.community.visibility import live_comment, live_post
from subscriptions import jobs, outbox


# -- batch loads (DataLoaders) ----------------------------------------------------------


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


# -- likes ------------------------------------------------------------------------------


async def like_post(actor: Actor, post_id: int) -> Post:
    """Idempotent: a repeated like changes nothing and is not an error."""
    user = require(actor)
    post = await live_post(actor, post_id)
    async with outbox.atomic():
        try:
            async with outbox.atomic():  # savepoint: the unique index decides
                await PostLike.create(user_id=user.id, post_id=post.id)
        except IntegrityError:
            pass
        else:
            await Post.filter(id=post.id).update(like_count=F("like_count") + 1)
            if post.author_id != user.id:
                await outbox.enqueue(jobs.loyalty_event(post.author_id, "LIKE_RECEIVED", f"like:post:{post.id}:{user.id}"))
                likes = (await Post.get(id=post.id)).like_count
                others = f" and {likes - 1} other{'s' if likes > 2 else ''}" if likes > 1 else ""
                await notifications.notify_grouped(
                    post.author_id, "LIKES", f"likes:post:{post.id}",
                    f"{user.nickname}{others} liked “{post.title[:60]}”", data={"postId": post.id, "likeCount": likes},
                )
    return await Post.get(id=post.id)


async def unlike_post(actor: Actor, post_id: int) -> Post:
    user = require(actor)
    post = await live_post(actor, post_id)
    async with outbox.atomic():
        deleted = await PostLike.filter(user_id=user.id, post_id=post.id).delete()
        if deleted:
            await Post.filter(id=post.id).update(like_count=F("like_count") - 1)
    return await Post.get(id=post.id)


async def like_comment(actor: Actor, comment_id: int) -> Comment:
    user = require(actor)
    comment = await live_comment(actor, comment_id)
    async with outbox.atomic():
        try:
            async with outbox.atomic():
                await CommentLike.create(user_id=user.id, comment_id=comment.id)
        except IntegrityError:
            pass
        else:
            await Comment.filter(id=comment.id).update(like_count=F("like_count") + 1)
            await rerank(comment.id)
            if comment.author_id != user.id:
                await outbox.enqueue(
                    jobs.loyalty_event(comment.author_id, "LIKE_RECEIVED", f"like:comment:{comment.id}:{user.id}")
                )
    return await Comment.get(id=comment.id)


async def unlike_comment(actor: Actor, comment_id: int) -> Comment:
    user = require(actor)
    comment = await live_comment(actor, comment_id)
    async with outbox.atomic():
        deleted = await CommentLike.filter(user_id=user.id, comment_id=comment.id).delete()
        if deleted:
            await Comment.filter(id=comment.id).update(like_count=F("like_count") - 1)
            await rerank(comment.id)
    return await Comment.get(id=comment.id)
