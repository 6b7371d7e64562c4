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
from schema.base import After, Before, Connection, First, Last, UserError, errors_field, mutation
from schema.community.types import Comment, Post, user_of
from schema.context import Info


ModeratedContent = Annotated[
    Post | Comment, strawberry.union("ModeratedContent", description="A post or a comment under moderation.")
]


def _content(item: PostModel | CommentModel) -> Post | Comment:
    return Post.from_model(item) if isinstance(item, PostModel) else Comment.from_model(item)


@strawberry.enum(description="Why an item is in the moderation queue.")
class QueueItemKind(Enum):
    REPORT = strawberry.enum_value("REPORT", description="A user reported the content.")
    HELD = strawberry.enum_value("HELD", description="The word filter held the content before publication.")


@strawberry.type(description="An open report or a held post or comment, for moderators.")
class ModerationQueueItem:
    kind: QueueItemKind = strawberry.field(description="A report, or content held by the filter.")
    reason: str = strawberry.field(description="The reporter's words, or what the filter matched.")
    created_at: datetime = strawberry.field(description="When it was reported or held; the queue's order.")
    _item: strawberry.Private[moderation.QueueItem]

    @strawberry.field(description="The post or comment concerned; null if it no longer exists.")
    async def target(self, info: Info) -> ModeratedContent | None:
        target = self._item.target
        if target.kind == moderation.POST:
            post = await info.context.loaders.post.load(target.id)
            return Post.from_model(post) if post is not None else None
        comment = await info.context.loaders.comment.load(target.id)
        return Comment.from_model(comment) if comment is not None else None

    @strawberry.field(description="The user who reported it (REPORT items); null for HELD items.")
    async def reporter(self, info: Info) -> User | None:
        reporter_id = moderation.describe(self._item)["reporter_id"]
        return await user_of(info, reporter_id) if reporter_id is not None else None

    @strawberry.field(description="How many reports of the target are open.")
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


@strawberry.type(description="Queries for moderators.")
class ModerationQueries:
    @strawberry.field(description="Moderators and admins: open reports and held content, oldest first.")
    async def moderation_queue(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[ModerationQueueItem]:
        page = await moderation.queue(info.context.actor, first=first, after=after, last=last, before=before)
        return Connection.of(page, ModerationQueueItem.of)


# -- mutations --------------------------------------------------------------------------


def _target(value: strawberry.ID) -> moderation.Target:
    try:
        gid = relay.GlobalID.from_id(str(value))
        kind = {"Post": moderation.POST, "Comment": moderation.COMMENT}[gid.type_name]
        return moderation.Target(kind, int(gid.node_id))
    except (ValueError, TypeError, KeyError):
        raise invalid("targetId", "Expected the ID of a Post or a Comment.") from None


@strawberry.input(description="Content to report.")
class ReportContentInput:
    target_id: strawberry.ID = strawberry.field(description="A Post or a Comment.")
    reason: str = strawberry.field(description="What is wrong with it, for the moderators.")


@strawberry.type(description="Result of `reportContent`.")
class ReportContentPayload:
    errors: list[UserError] = errors_field()
    reported: bool | None = strawberry.field(default=None, description="True once reported; null on failure.")


@strawberry.input(description="A moderation decision on a post or comment.")
class ModerateContentInput:
    target_id: strawberry.ID = strawberry.field(description="A Post or a Comment.")
    reason: str = strawberry.field(description="Kept in the audit trail.")


@strawberry.type(description="A moderation decision's result.")
class ModerateContentPayload:
    errors: list[UserError] = errors_field()
    target: ModeratedContent | None = strawberry.field(
        default=None, description="The content with its new `status`; null on failure."
    )


@strawberry.input(description="Content to hide, and why.")
class HideContentInput(ModerateContentInput):
    pass


@strawberry.type(description="Result of `hideContent`.")
class HideContentPayload(ModerateContentPayload):
    pass


@strawberry.input(description="Hidden content to show again, and why.")
class RestoreContentInput(ModerateContentInput):
    pass


@strawberry.type(description="Result of `restoreContent`.")
class RestoreContentPayload(ModerateContentPayload):
    pass


@strawberry.input(description="Held content to publish, and why.")
class ReleaseContentInput(ModerateContentInput):
    pass


@strawberry.type(description="Result of `releaseContent`.")
class ReleaseContentPayload(ModerateContentPayload):
    pass


@strawberry.input(description="Content whose reports to close, and why.")
class DismissReportsInput(ModerateContentInput):
    pass


@strawberry.type(description="Result of `dismissReports`.")
class DismissReportsPayload(ModerateContentPayload):
    pass


@strawberry.type(description="Mutations of moderation.")
class ModerationMutations:
    @mutation(description="Report a post or comment to the moderators (once per user while open).")
    async def report_content(self, info: Info, input: ReportContentInput) -> ReportContentPayload:
        await moderation.report_content(info.context.actor, _target(input.target_id), input.reason)
        return ReportContentPayload(reported=True)

    @mutation(description="Moderators and admins: hide visible or held content (audited; closes its reports).")
    async def hide_content(self, info: Info, input: HideContentInput) -> HideContentPayload:
        item = await moderation.hide_content(info.context.actor, _target(input.target_id), input.reason)
        return HideContentPayload(target=_content(item))

    @mutation(description="Moderators and admins: make hidden content visible again (audited).")
    async def restore_content(self, info: Info, input: RestoreContentInput) -> RestoreContentPayload:
        item = await moderation.restore_content(info.context.actor, _target(input.target_id), input.reason)
        return RestoreContentPayload(target=_content(item))

    @mutation(description="Moderators and admins: publish held content (audited); it reaches feeds as if just posted.")
    async def release_content(self, info: Info, input: ReleaseContentInput) -> ReleaseContentPayload:
        item = await moderation.release_content(info.context.actor, _target(input.target_id), input.reason)
        return ReleaseContentPayload(target=_content(item))

    @mutation(description="Moderators and admins: close the open reports of content that stays as it is (audited).")
    async def dismiss_reports(self, info: Info, input: DismissReportsInput) -> DismissReportsPayload:
        item = await moderation.dismiss_reports(info.context.actor, _target(input.target_id), input.reason)
        return DismissReportsPayload(target=_content(item))
