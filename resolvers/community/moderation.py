"""Moderation: reports, the moderators' queue, and hide / restore / release with an audit trail.

Every decision writes a ModerationAction (who, what, why) in the transaction that makes it,
and closes the target's open reports. Status changes go through ``posts.move_post`` and
``comments.move_comment``, conditional moves, so the counters they keep (comment counts,
product ratings) change once however many moderators click at the same time.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count

from models.community.comments import Comment
from models.community.moderation import ModerationAction, Report
from models.community.posts import ContentStatus, Post
from resolvers.community import comments, posts
from resolvers.community.visibility import visible_comment, visible_post
from resolvers.accounts import notifications
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor, require
from resolvers.accounts.permissions import Action
from resolvers.commerce.catalog import clean_text
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, page_size
from subscriptions import outbox

REASON_MAX = 300
POST = "POST"
COMMENT = "COMMENT"


@dataclass(frozen=True)
class Target:
    kind: str  # POST or COMMENT
    id: int


async def _load(target: Target) -> Post | Comment | None:
    if target.kind == POST:
        return await Post.filter(id=target.id).first()
    return await Comment.filter(id=target.id).select_related("post").first()


def _reason(reason: str) -> str:
    return clean_text(reason, "reason", minimum=1, maximum=REASON_MAX, multiline=True)


# -- reports ----------------------------------------------------------------------------


async def report_content(actor: Actor, target: Target, reason: str) -> Report:
    """One open report per user and target (DUPLICATE otherwise); a closed one reopens."""
    user = require(actor)
    reason = _reason(reason)
    found = (
        await visible_post(actor, target.id)
        if target.kind == POST
        else await visible_comment(actor, target.id)
    )
    if found is None or found.status == ContentStatus.DELETED:
        raise UserFacingError(ErrorCode.NOT_FOUND, "Nothing to report there.", "targetId")
    async with outbox.atomic():
        try:
            async with outbox.atomic():
                return await Report.create(
                    reporter_id=user.id, target_kind=target.kind, target_id=target.id, reason=reason
                )
        except IntegrityError:
            pass
        reopened = await Report.filter(
            reporter_id=user.id, target_kind=target.kind, target_id=target.id, open=False
        ).update(open=True, reason=reason)
        if reopened != 1:
            raise UserFacingError(ErrorCode.DUPLICATE, "You already reported this; a moderator will look at it.", "targetId")
        return await Report.get(reporter_id=user.id, target_kind=target.kind, target_id=target.id)


# -- decisions --------------------------------------------------------------------------


async def _decide(
    actor: Actor, target: Target, reason: str, action: str, allowed_from: tuple[ContentStatus, ...],
    to: ContentStatus | None,
) -> Post | Comment:
    moderator = permissions.require(actor, Action.MODERATE_CONTENT)
    reason = _reason(reason)
    item = await _load(target)
    if item is None or item.status == ContentStatus.DELETED:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such content.", "targetId")
    if item.status not in allowed_from:
        raise UserFacingError(
            ErrorCode.INVALID_STATE, f"Cannot {action.lower()} content that is {item.status.value}.", "targetId"
        )
    async with outbox.atomic():
        if to is not None:
            moved = (
                await posts.move_post(item, to)
                if isinstance(item, Post)
                else await comments.move_comment(item, to)
            )
            if not moved:
                raise UserFacingError(ErrorCode.INVALID_STATE, "Someone decided on this meanwhile.", "targetId")
            if action == "RELEASE":
                if isinstance(item, Post):
                    await posts.publish_post(item)
                else:
                    await comments.publish_comment(item, item.post)
        await ModerationAction.create(
            moderator_id=moderator.id, target_kind=target.kind, target_id=target.id, action=action, reason=reason
        )
        await Report.filter(target_kind=target.kind, target_id=target.id, open=True).update(open=False)
        if action == "HIDE":
            what = "post" if isinstance(item, Post) else "comment"
            await notifications.notify(
                item.author_id, "CONTENT_HIDDEN", f"A moderator hid your {what}", reason,
                {"kind": target.kind, "id": target.id},
            )
    return item


async def hide_content(actor: Actor, target: Target, reason: str) -> Post | Comment:
    return await _decide(actor, target, reason, "HIDE", (ContentStatus.VISIBLE, ContentStatus.HELD), ContentStatus.HIDDEN)


async def restore_content(actor: Actor, target: Target, reason: str) -> Post | Comment:
    return await _decide(actor, target, reason, "RESTORE", (ContentStatus.HIDDEN,), ContentStatus.VISIBLE)


async def release_content(actor: Actor, target: Target, reason: str) -> Post | Comment:
    """HELD content goes public (and publishes as if just created)."""
    return await _decide(actor, target, reason, "RELEASE", (ContentStatus.HELD,), ContentStatus.VISIBLE)


async def dismiss_reports(actor: Actor, target: Target, reason: str) -> Post | Comment:
    """Close the open reports of content that stays as it is."""
    return await _decide(
        actor, target, reason, "DISMISS",
        (ContentStatus.VISIBLE, ContentStatus.HELD, ContentStatus.HIDDEN), None,
    )


async def actions_for(target: Target) -> list[ModerationAction]:
    return list(await ModerationAction.filter(target_kind=target.kind, target_id=target.id).order_by("id"))


# -- the queue --------------------------------------------------------------------------
#
# Open reports, held posts and held comments, oldest first: three sources merged by
# (created_at, source, id). A cursor carries that triple, so each source is read from
# exactly where the last page stopped.

REPORT, HELD_POST, HELD_COMMENT = 0, 1, 2


@dataclass(frozen=True)
class QueueItem:
    source: int
    created_at: datetime
    id: int
    row: Report | Post | Comment
    reason: str = ""

    @property
    def target(self) -> Target:
        if isinstance(self.row, Report):
            return Target(self.row.target_kind, self.row.target_id)
        return Target(POST if self.source == HELD_POST else COMMENT, self.row.id)


def _cursor(item: QueueItem) -> str:
    raw = orjson.dumps(["queue", item.created_at.isoformat(), item.source, item.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, field: str) -> tuple[datetime, int, int]:
    try:
        name, at, source, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if name != "queue" or not isinstance(source, int) or not isinstance(row_id, int):
            raise ValueError
        return datetime.fromisoformat(at), source, row_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise invalid(field, "The cursor is not one this API handed out.") from None


def _beyond(bound: tuple[datetime, int, int] | None, source: int, *, later: bool) -> Q:
    """Rows of ``source`` after (``later``) or before the (created_at, source, id) ``bound``."""
    if bound is None:
        return Q()
    at, bound_source, row_id = bound
    if later:
        if source > bound_source:
            return Q(created_at__gte=at)
        if source < bound_source:
            return Q(created_at__gt=at)
        return Q(created_at__gt=at) | Q(created_at=at, id__gt=row_id)
    if source < bound_source:
        return Q(created_at__lte=at)
    if source > bound_source:
        return Q(created_at__lt=at)
    return Q(created_at__lt=at) | Q(created_at=at, id__lt=row_id)


async def queue(
    actor: Actor, *, first: int | None = None, after: str | None = None, last: int | None = None,
    before: str | None = None,
) -> Page[QueueItem]:
    """For moderators and admins: open reports and held content, oldest first."""
    permissions.require(actor, Action.MODERATE_CONTENT)
    backwards, size = page_size(first, last)
    lower = _decode(after, "after") if after is not None else None
    upper = _decode(before, "before") if before is not None else None

    def bounded(source: int) -> Q:
        return _beyond(lower, source, later=True) & _beyond(upper, source, later=False)

    # Each source in the page's direction; the last (or first) `size` of the merge are the page.
    order = ("-created_at", "-id") if backwards else ("created_at", "id")
    reports = await Report.filter(bounded(REPORT), open=True).order_by(*order).limit(size + 1)
    held_posts = await Post.filter(bounded(HELD_POST), status=ContentStatus.HELD).order_by(*order).limit(size + 1)
    held_comments = await Comment.filter(bounded(HELD_COMMENT), status=ContentStatus.HELD).order_by(*order).limit(
        size + 1
    )
    holds = await _hold_reasons([(POST, p.id) for p in held_posts] + [(COMMENT, c.id) for c in held_comments])
    items = [QueueItem(REPORT, r.created_at, r.id, r, r.reason) for r in reports]
    items += [QueueItem(HELD_POST, p.created_at, p.id, p, holds.get((POST, p.id), "")) for p in held_posts]
    items += [QueueItem(HELD_COMMENT, c.created_at, c.id, c, holds.get((COMMENT, c.id), "")) for c in held_comments]
    items.sort(key=lambda i: (i.created_at, i.source, i.id), reverse=backwards)
    more = len(items) > size
    page = items[:size]
    if backwards:
        page.reverse()
    return Page(
        items=page,
        cursors=[_cursor(i) for i in page],
        has_next=before is not None if backwards else more,
        has_previous=more if backwards else after is not None,
    )


async def _hold_reasons(targets: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """Why the filter held each target (its latest HOLD action): one query per kind."""
    reasons: dict[tuple[str, int], str] = {}
    for kind in {k for k, _ in targets}:
        ids = [i for k, i in targets if k == kind]
        actions = await ModerationAction.filter(target_kind=kind, target_id__in=ids, action="HOLD").order_by("id")
        reasons.update({(kind, a.target_id): a.reason for a in actions})
    return reasons


async def open_report_counts(keys: list[tuple[str, int]]) -> list[int]:
    """Open reports per (kind, id) target: one grouped query per kind."""
    counts: dict[tuple[str, int], int] = {}
    for kind in {k for k, _ in keys}:
        ids = [i for k, i in keys if k == kind]
        rows = (
            await Report.filter(target_kind=kind, target_id__in=ids, open=True)
            .annotate(n=Count("id"))
            .group_by("target_id")
            .values("target_id", "n")
        )
        counts.update({(kind, row["target_id"]): int(row["n"]) for row in rows})
    return [counts.get(key, 0) for key in keys]


def describe(item: QueueItem) -> dict[str, Any]:
    if isinstance(item.row, Report):
        return {"reason": item.reason, "reporter_id": item.row.reporter_id}
    return {"reason": item.reason or "held for review", "reporter_id": None}
