"""Invitations in the graph: the viewer's invite code and how their invitations went."""

from __future__ import annotations

import strawberry

from resolvers.loyalty import invitations
from schema.context import Info


@strawberry.type(description="The viewer's invite code and what came of it.")
class Invitation:
    code: str = strawberry.field(description="Give it to a friend: they enter it as `RegisterInput.inviteCode`.")
    pending: int = strawberry.field(description="Friends who joined and have not yet completed a qualifying order.")
    rewarded: int = strawberry.field(description="Friends whose first qualifying order earned you both points.")
    refused: int = strawberry.field(
        description="Sign-ups that earn nothing: from your own address or device, or past the monthly cap."
    )


@strawberry.type(description="Queries of invitations.")
class InvitationQueries:
    @strawberry.field(description="The signed-in user's invite code (made on first use) and their invitations.")
    async def my_invitation(self, info: Info) -> Invitation:
        found = await invitations.summary(info.context.actor)
        return Invitation(code=found.code, pending=found.pending, rewarded=found.rewarded, refused=found.refused)
