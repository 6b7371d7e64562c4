"""Comments in the graph: writing one (a post's comments are the ``Post.comments`` field)."""

from __future__ import annotations

import strawberry

from resolvers.community import comments
from schema.base import UserError, decode_id, mutation, errors_field
from schema.community.posts import optional_id
from schema.community.types import Comment, forget_post
from schema.context import Info


@strawberry.input(description="A new comment.")
class AddCommentInput:
    post_id: strawberry.ID = strawberry.field(description="The post commented on (global ID).")
    body: str = strawberry.field(description="Markdown (raw HTML is shown as text); @nickname mentions notify.")
    parent_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=f"Reply to this comment. Past depth {comments.MAX_DEPTH - 1} the reply continues "
        "the thread beside it.",
    )
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="DEMAND posts: a merchant offers one of their own products."
    )


@strawberry.type(description="Result of `addComment`.")
class AddCommentPayload:
    errors: list[UserError] = errors_field()
    comment: Comment | None = strawberry.field(
        default=None, description="The comment: VISIBLE, or HELD for a moderator. Null on failure."
    )


@strawberry.type(description="Mutations of comments.")
class CommentMutations:
    @mutation(description="Comment on a post or reply to a comment; @nickname mentions notify.")
    async def add_comment(self, info: Info, input: AddCommentInput) -> AddCommentPayload:
        post_id = decode_id(input.post_id, "Post", "postId")
        forget_post(info, post_id)
        comment = await comments.add_comment(
            info.context.actor, post_id, input.body,
            parent_id=optional_id(input.parent_id, "Comment", "parentId"),
            product_id=optional_id(input.product_id, "Product", "productId"),
        )
        return AddCommentPayload(comment=Comment.from_model(comment))
