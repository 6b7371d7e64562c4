"""The HOT rank of posts.

Stored on the post (``hot_rank``) and read ordered by (hot_rank, id) desc with a keyset
cursor. The rank is Lemmy's ``log10(max(2, score + 2)) / (hours + 2) ** 1.8`` with score =
likes + comments (floored by the max, so negative or empty posts rank like score 0, never
below), set when the post is fanned out and refreshed in batches by a periodic sweep for
the posts of the last ``HOT_WINDOW``. The same sweep sets the rank of posts that left the
window to 0, so a post that stops being refreshed cannot stay on top (Lemmy #3428).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from models.community.posts import ContentStatus, Post

#: Posts younger than this have their HOT rank refreshed; older ones rank 0.
HOT_WINDOW = timedelta(days=7)
#: Post rows per HOT refresh batch.
RANK_BATCH = 1000


def parse_rank(value: Any) -> float:
    """A HOT cursor's rank, or ValueError (the cursor is not one this API handed out)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError
    return float(value)


def hot_rank(likes: int, comments: int, created_at: datetime, now: datetime | None = None) -> float:
    """Lemmy's rank: log10(max(2, score + 2)) / (hours + 2) ** 1.8; 0 outside the window."""
    age = (now or datetime.now(UTC)) - created_at
    if age >= HOT_WINDOW:
        return 0.0
    hours = max(0.0, age.total_seconds() / 3600)
    score = likes + comments
    return math.log10(max(2, score + 2)) / (hours + 2) ** 1.8


async def rank_post(post_id: int) -> None:
    """Give a new post its first rank (the sweep keeps it up to date afterwards)."""
    post = await Post.filter(id=post_id).first()
    if post is not None:
        rank = hot_rank(post.like_count, post.comment_count, post.created_at)
        await Post.filter(id=post_id).update(hot_rank=rank)


async def refresh_hot_ranks(now: datetime | None = None, *, batch: int = RANK_BATCH) -> int:
    """Recompute the rank of the window's posts in batches, and zero the rank of every post
    older than the window (those that just left it included). Returns posts recomputed."""
    now = now or datetime.now(UTC)
    cutoff = now - HOT_WINDOW
    done = 0
    last = 0
    while True:
        rows = list(
            await Post.filter(created_at__gte=cutoff, id__gt=last, status=ContentStatus.VISIBLE)
            .order_by("id")
            .limit(batch)
        )
        if not rows:
            break
        for row in rows:
            row.hot_rank = hot_rank(row.like_count, row.comment_count, row.created_at, now)
        await Post.bulk_update(rows, fields=["hot_rank"], batch_size=batch)
        done += len(rows)
        last = rows[-1].id
        if len(rows) < batch:
            break
    await Post.filter(created_at__lt=cutoff, hot_rank__gt=0).update(hot_rank=0.0)
    return done
