"""Answers and demands: the author of a QUESTION accepts an answer, the author of a DEMAND
chooses a merchant's reply that links a product. Both are final, and rewarded once."""

from __future__ import annotations

from models.accounts.users import User
from models.commerce.catalog import Product
from models.community.comments import Comment
from models.community.posts import ContentStatus, Post, PostKind
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, require
from resolvers.community.visibility import live_post
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import jobs, outbox


async def _own_post_and_reply(
    actor: Actor, post_id: int, comment_id: int, kind: PostKind
) -> tuple[User, Post, Comment]:
    user = require(actor)
    post = await live_post(actor, post_id)
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
        await outbox.enqueue(jobs.loyalty_event(comment.author_id, "ANSWER_ACCEPTED", f"answer:{post.id}"))
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
        await outbox.enqueue(jobs.loyalty_event(product.merchant.owner_id, "DEMAND_FULFILLED", f"demand:{post.id}"))
        await notifications.notify(
            comment.author_id, "DEMAND_FULFILLED", "Your product was chosen", post.title,
            {"postId": post.id, "commentId": comment.id, "productId": product.id}, dedupe_key=f"demand:{post.id}",
        )
    return await Post.get(id=post.id)
