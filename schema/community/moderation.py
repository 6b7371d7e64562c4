"""Moderation in the graph: reports, the moderators' queue, and hide / restore / release /
dismiss (resolvers.community.moderation; every decision is audited)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import relay

from models.community.comments import Comment as CommentModel
from models.community.posts import Post as PostModel
from resolvers.community import moderation
from resolvers.errors import invalid
from schema.accounts.users import User
from schema.base import Connection, UserError, mutation, errors_field
from schema.community.types import Comment, Post, user_of
from schema.context import Info


ModeratedContent = Annotated[Post | Comment, strawberry.union("ModeratedContent")]


def _content(item: PostModel | CommentModel) -> Post | Comment:
    return Post.from_model(item) if isinstance(item, PostModel) else Comment.from_model(item)


@strawberry.enum
class QueueItemKind(Enum):
    REPORT = "REPORT"
    HELD = "HELD"


@strawberry.type(description="An open report or a held post or comment, for moderators.")
class ModerationQueueItem:
    kind: QueueItemKind
    reason: str
    created_at: datetime
    _item: strawberry.Private[moderation.QueueItem]

    @strawberry.field
    async def target(self, info: Info) -> ModeratedContent | None:
        target = self._item.target
        if target.kind == moderation.POST:
            post = await info.context.loaders.post.load(target.id)
            return Post.from_model(post) if post is not None else None
        comment = await info.context.loaders.comment.load(target.id)
        return Comment.from_model(comment) if comment is not None else None

    @strawberry.field(description="The user who reported (REPORT items).")
    async def reporter(self, info: Info) -> User | None:
        reporter_id = moderation.describe(self._item)["reporter_id"]
        return await user_of(info, reporter_id) if reporter_id is not None else None

    @strawberry.field(description="Open reports on the target.")
    async def open_reports(self, info: Info) -> int:
        target = self._item.target
        return await info.context.loaders.open_reports.load((target.kind, target.id))

    @classmethod
    def of(cls, item: moderation.QueueItem) -> ModerationQueueItem:
        return cls(
            kind=QueueItemKind.REPORT if item.source == moderation.REPORT else QueueItemKind.HELD,
            reason=moderation.describe(item)["reason"],
            created_at=item.created_at,
            _item=item,
        )


@strawberry.type
class ModerationQueries:
    @strawberry.field(description="Moderators and admins: open reports and held content, oldest first.")
    async def moderation_queue(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[ModerationQueueItem]:
        page = await moderation.queue(info.context.actor, first=first, after=after)
        return Connection.of(page, ModerationQueueItem.of)


# -- mutations --------------------------------------------------------------------------


def _target(value: strawberry.ID) -> moderation.Target:
    try:
        gid = relay.GlobalID.from_id(str(value))
        kind = {"Post": moderation.POST, "Comment": moderation.COMMENT}[gid.type_name]
        return moderation.Target(kind, int(gid.node_id))
    except (ValueError, TypeError, KeyError):
        raise invalid("targetId", "Expected the ID of a Post or a Comment.") from None


@strawberry.input
class ReportContentInput:
    target_id: strawberry.ID = strawberry.field(description="A Post or a Comment.")
    reason: str


@strawberry.type
class ReportContentPayload:
    errors: list[UserError] = errors_field()
    reported: bool | None = None


@strawberry.input
class ModerateContentInput:
    target_id: strawberry.ID = strawberry.field(description="A Post or a Comment.")
    reason: str = strawberry.field(description="Kept in the audit trail.")


@strawberry.type
class ModerateContentPayload:
    errors: list[UserError] = errors_field()
    target: ModeratedContent | None = None


@strawberry.input
class HideContentInput(ModerateContentInput):
    pass


@strawberry.type
class HideContentPayload(ModerateContentPayload):
    pass


@strawberry.input
class RestoreContentInput(ModerateContentInput):
    pass


@strawberry.type
class RestoreContentPayload(ModerateContentPayload):
    pass


@strawberry.input
class ReleaseContentInput(ModerateContentInput):
    pass


@strawberry.type
class ReleaseContentPayload(ModerateContentPayload):
    pass


@strawberry.input
class DismissReportsInput(ModerateContentInput):
    pass


@strawberry.type
class DismissReportsPayload(ModerateContentPayload):
    pass


@strawberry.type
class ModerationMutations:
    @mutation(description="Report a post or comment to the moderators (once per user while open).")
    async def report_content(self, info: Info, input: ReportContentInput) -> ReportContentPayload:
        await moderation.report_content(info.context.actor, _target(input.target_id), input.reason)
        return ReportContentPayload(reported=True)

    @mutation(description="Staff: hide visible or held content (audited; closes its reports).")
    async def hide_content(self, info: Info, input: HideContentInput) -> HideContentPayload:
        item = await moderation.hide_content(info.context.actor, _target(input.target_id), input.reason)
        return HideContentPayload(target=_content(item))

    @mutation(description="Staff: make hidden content visible again (audited).")
    async def restore_content(self, info: Info, input: RestoreContentInput) -> RestoreContentPayload:
        item = await moderation.restore_content(info.context.actor, _target(input.target_id), input.reason)
        return RestoreContentPayload(target=_content(item))

    @mutation(description="Staff: publish held content (audited); it reaches feeds as if just posted.")
    async def release_content(self, info: Info, input: ReleaseContentInput) -> ReleaseContentPayload:
        item = await moderation.release_content(info.context.actor, _target(input.target_id), input.reason)
        return ReleaseContentPayload(target=_content(item))

    @mutation(description="Staff: close the open reports of content that stays as it is (audited).")
    async def dismiss_reports(self, info: Info, input: DismissReportsInput) -> DismissReportsPayload:
        item = await moderation.dismiss_reports(info.context.actor, _target(input.target_id), input.reason)
        return DismissReportsPayload(target=_content(item))
