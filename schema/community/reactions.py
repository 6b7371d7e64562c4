"""Likes in the graph: liking a post or a comment, and taking the like back (all idempotent)."""

from __future__ import annotations

import strawberry

from resolvers.community import reactions
from schema.base import UserError, decode_id, mutation, errors_field
from schema.community.types import Comment, Post
from schema.context import Info


@strawberry.input(description="The post to like.")
class LikePostInput:
    post_id: strawberry.ID = strawberry.field(description="The post's global ID.")


@strawberry.type(description="Result of `likePost`.")
class LikePostPayload:
    errors: list[UserError] = errors_field()
    post: Post | None = strawberry.field(
        default=None, description="The post, with its new `likeCount`; null on failure."
    )


@strawberry.input(description="The post to unlike.")
class UnlikePostInput:
    post_id: strawberry.ID = strawberry.field(description="The post's global ID.")


@strawberry.type(description="Result of `unlikePost`.")
class UnlikePostPayload:
    errors: list[UserError] = errors_field()
    post: Post | None = strawberry.field(
        default=None, description="The post, with its new `likeCount`; null on failure."
    )


@strawberry.input(description="The comment to like.")
class LikeCommentInput:
    comment_id: strawberry.ID = strawberry.field(description="The comment's global ID.")


@strawberry.type(description="Result of `likeComment`.")
class LikeCommentPayload:
    errors: list[UserError] = errors_field()
    comment: Comment | None = strawberry.field(
        default=None, description="The comment, with its new `likeCount`; null on failure."
    )


@strawberry.input(description="The comment to unlike.")
class UnlikeCommentInput:
    comment_id: strawberry.ID = strawberry.field(description="The comment's global ID.")


@strawberry.type(description="Result of `unlikeComment`.")
class UnlikeCommentPayload:
    errors: list[UserError] = errors_field()
    comment: Comment | None = strawberry.field(
        default=None, description="The comment, with its new `likeCount`; null on failure."
    )


@strawberry.type(description="Mutations of likes.")
class ReactionMutations:
    @mutation(description="Like a post (idempotent: liking again changes nothing).")
    async def like_post(self, info: Info, input: LikePostInput) -> LikePostPayload:
        post_id = decode_id(input.post_id, "Post", "postId")
        return LikePostPayload(post=Post.from_model(await reactions.like_post(info.context.actor, post_id)))

    @mutation(description="Take a like back (idempotent).")
    async def unlike_post(self, info: Info, input: UnlikePostInput) -> UnlikePostPayload:
        post_id = decode_id(input.post_id, "Post", "postId")
        return UnlikePostPayload(post=Post.from_model(await reactions.unlike_post(info.context.actor, post_id)))

    @mutation(description="Like a comment (idempotent).")
    async def like_comment(self, info: Info, input: LikeCommentInput) -> LikeCommentPayload:
        comment_id = decode_id(input.comment_id, "Comment", "commentId")
        comment = await reactions.like_comment(info.context.actor, comment_id)
        return LikeCommentPayload(comment=Comment.from_model(comment))

    @mutation(description="Take a comment like back (idempotent).")
    async def unlike_comment(self, info: Info, input: UnlikeCommentInput) -> UnlikeCommentPayload:
        comment_id = decode_id(input.comment_id, "Comment", "commentId")
        comment = await reactions.unlike_comment(info.context.actor, comment_id)
        return UnlikeCommentPayload(comment=Comment.from_model(comment))
