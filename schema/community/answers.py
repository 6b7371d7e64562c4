"""Answers and demands in the graph: the author of a QUESTION accepts an answer, the author of
a DEMAND chooses a merchant's reply."""

from __future__ import annotations

import strawberry

from resolvers.community import answers
from schema.base import UserError, decode_id, mutation, errors_field
from schema.community.types import Post
from schema.context import Info


@strawberry.input(description="The answer to accept.")
class AcceptAnswerInput:
    post_id: strawberry.ID = strawberry.field(description="The QUESTION post's global ID.")
    comment_id: strawberry.ID = strawberry.field(description="The comment to accept (on that post).")


@strawberry.type(description="Result of `acceptAnswer`.")
class AcceptAnswerPayload:
    errors: list[UserError] = errors_field()
    post: Post | None = strawberry.field(default=None, description="The post, with its `acceptedAnswer`.")


@strawberry.input(description="The merchant reply to choose.")
class FulfilDemandInput:
    post_id: strawberry.ID = strawberry.field(description="The DEMAND post's global ID.")
    comment_id: strawberry.ID = strawberry.field(description="A reply that links a product.")


@strawberry.type(description="Result of `fulfilDemand`.")
class FulfilDemandPayload:
    errors: list[UserError] = errors_field()
    post: Post | None = strawberry.field(
        default=None, description="The post, with its `chosenReply` and `fulfilledBy`; null on failure."
    )


@strawberry.type(description="Mutations that close questions and demands.")
class AnswerMutations:
    @mutation(description="The author of a QUESTION accepts an answer (once).")
    async def accept_answer(self, info: Info, input: AcceptAnswerInput) -> AcceptAnswerPayload:
        post_id = decode_id(input.post_id, "Post", "postId")
        comment_id = decode_id(input.comment_id, "Comment", "commentId")
        post = await answers.accept_answer(info.context.actor, post_id, comment_id)
        return AcceptAnswerPayload(post=Post.from_model(post))

    @mutation(description="The author of a DEMAND chooses a merchant's reply (once).")
    async def fulfil_demand(self, info: Info, input: FulfilDemandInput) -> FulfilDemandPayload:
        post_id = decode_id(input.post_id, "Post", "postId")
        comment_id = decode_id(input.comment_id, "Comment", "commentId")
        post = await answers.fulfil_demand(info.context.actor, post_id, comment_id)
        return FulfilDemandPayload(post=Post.from_model(post))
