"""Follows in the graph: following and unfollowing a user, merchant, product or topic."""

from __future__ import annotations

import strawberry
from strawberry import relay

from resolvers.community import follows
from resolvers.errors import invalid
from schema.base import UserError, mutation, errors_field
from schema.context import Info


def _target(target_id: strawberry.ID) -> tuple[str, int]:
    try:
        gid = relay.GlobalID.from_id(str(target_id))
        return gid.type_name, int(gid.node_id)
    except (ValueError, TypeError):
        raise invalid(follows.FIELD, "Expected the ID of a user, merchant, product or topic.") from None


@strawberry.input(description="What to follow.")
class FollowInput:
    target_id: strawberry.ID = strawberry.field(description="A User, Merchant, Product or Topic.")


@strawberry.input(description="What to stop following.")
class UnfollowInput:
    target_id: strawberry.ID = strawberry.field(description="A User, Merchant, Product or Topic.")


@strawberry.type(description="Result of `follow`.")
class FollowPayload:
    errors: list[UserError] = errors_field()
    following: bool | None = strawberry.field(
        default=None, description="Whether the viewer follows the target now (true); null on failure."
    )
    changed: bool | None = strawberry.field(default=None, description="False when it already was so.")


@strawberry.type(description="Result of `unfollow`.")
class UnfollowPayload:
    errors: list[UserError] = errors_field()
    following: bool | None = strawberry.field(
        default=None, description="Whether the viewer follows the target now (false); null on failure."
    )
    changed: bool | None = strawberry.field(default=None, description="False when it already was so.")


@strawberry.type(description="Mutations of follows.")
class FollowMutations:
    @mutation(description="Follow a user, merchant, product or topic (idempotent).")
    async def follow(self, info: Info, input: FollowInput) -> FollowPayload:
        type_name, key = _target(input.target_id)
        result = await follows.follow(info.context.actor, type_name, key)
        return FollowPayload(following=result.following, changed=result.changed)

    @mutation(description="Stop following (idempotent).")
    async def unfollow(self, info: Info, input: UnfollowInput) -> UnfollowPayload:
        type_name, key = _target(input.target_id)
        result = await follows.unfollow(info.context.actor, type_name, key)
        return UnfollowPayload(following=result.following, changed=result.changed)
