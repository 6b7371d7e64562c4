"""Trending keywords: the terms rising in posts, comments and searches.

Computed by a sweep into ``trending_term`` (cheap to serve: a read is one indexed query), per
window (an hour, a day, a week), comparing the window that just ended with the one before it:

* Texts: VISIBLE posts (title and body) and comments created in the two windows, and SEARCH
  behaviour events. Each is segmented (kameng/text.py: jieba, stop words, single characters
  and bare numbers removed). Bounded: at most SOURCE_LIMIT of each source per window, the
  first TEXT_LIMIT characters of each text, segmented off the event loop.
* Count: the distinct people who used a term in the window (a post's or comment's author, a
  searcher's user or device id): one person repeating a word a hundred times counts once.
* Rise: ``(count + SMOOTHING) / (previous + SMOOTHING)``, so a term going from 0 to 1 is not
  infinitely rising. A term trends with at least MIN_COUNT people and a rise of MIN_RISE.

Staff read counts and rises (``trendingKeywords``); the public ``trendingTopics`` shows the
day's keywords that people also wrote about (not search-only terms) and that pass the
content filter.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from kameng import text
from models.community.comments import Comment
from models.community.posts import ContentStatus, Post
from models.discovery.events import BehaviourEvent, EventKind
from models.discovery.trending import TrendingTerm, TrendWindow
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.community import content
from resolvers.errors import UserFacingError, invalid

WINDOWS = {TrendWindow.HOUR: timedelta(hours=1), TrendWindow.DAY: timedelta(days=1), TrendWindow.WEEK: timedelta(days=7)}
#: How often the sweep recomputes each window (per process).
REFRESH = {TrendWindow.HOUR: timedelta(minutes=5), TrendWindow.DAY: timedelta(minutes=30),
           TrendWindow.WEEK: timedelta(hours=3)}
MIN_COUNT = 3
MIN_RISE = 1.5
SMOOTHING = 2.0
TOP_N = 100
SOURCE_LIMIT = 5000
TEXT_LIMIT = 1000
PAGE_MAX = 100

_last_run: dict[TrendWindow, datetime] = {}


@dataclass(frozen=True)
class Trend:
    term: str
    count: int
    previous_count: int
    content_count: int
    rise: float


# (who, when, text, is_content)
_Use = tuple[str, datetime, str, bool]


async def _uses(since: datetime, until: datetime) -> list[_Use]:
    uses: list[_Use] = []
    posts = await (
        Post.filter(status=ContentStatus.VISIBLE, created_at__gte=since, created_at__lt=until)
        .order_by("-id").limit(SOURCE_LIMIT).values_list("author_id", "created_at", "title", "body")
    )
    uses += [(f"u{a}", at, f"{title} {body[:TEXT_LIMIT]}", True) for a, at, title, body in posts]
    comments = await (
        Comment.filter(status=ContentStatus.VISIBLE, created_at__gte=since, created_at__lt=until)
        .order_by("-id").limit(SOURCE_LIMIT).values_list("author_id", "created_at", "body")
    )
    uses += [(f"u{a}", at, body[:TEXT_LIMIT], True) for a, at, body in comments]
    searches = await (
        BehaviourEvent.filter(kind=EventKind.SEARCH, occurred_at__gte=since, occurred_at__lt=until)
        .order_by("-id").limit(SOURCE_LIMIT).values_list("id", "user_id", "device_id", "occurred_at", "query")
    )
    for event_id, user_id, device_id, at, query in searches:
        who = f"u{user_id}" if user_id is not None else f"d{device_id}" if device_id else f"e{event_id}"
        uses.append((who, at, query or "", False))
    return uses


def _rank(uses: list[_Use], start: datetime) -> list[Trend]:
    """Counts per term in the current window (from ``start``) and the one before, and rises."""
    current: dict[str, set[str]] = {}
    previous: dict[str, set[str]] = {}
    content_people: dict[str, set[str]] = {}
    for who, at, body, is_content in uses:
        now_window = at >= start
        for term in text.keywords(body):
            (current if now_window else previous).setdefault(term, set()).add(who)
            if now_window and is_content:
                content_people.setdefault(term, set()).add(who)
    counted = Counter({term: len(people) for term, people in current.items()})
    trends = []
    for term, count in counted.items():
        before = len(previous.get(term, ()))
        rise = (count + SMOOTHING) / (before + SMOOTHING)
        if count >= MIN_COUNT and rise >= MIN_RISE:
            trends.append(Trend(term, count, before, len(content_people.get(term, ())), round(rise, 4)))
    trends.sort(key=lambda t: (-t.rise, -t.count, t.term))
    return trends[:TOP_N]


async def compute(window: TrendWindow, now: datetime | None = None) -> list[Trend]:
    """Recompute one window's trending terms and store them in place of the last ones."""
    now = now or datetime.now(UTC)
    span = WINDOWS[window]
    uses = await _uses(now - 2 * span, now)
    trends = await asyncio.to_thread(_rank, uses, now - span)  # jieba off the event loop
    async with in_transaction():
        await TrendingTerm.filter(window=window).delete()
        await TrendingTerm.bulk_create([
            TrendingTerm(window=window, term=t.term, count=t.count, previous_count=t.previous_count,
                         content_count=t.content_count, rise=t.rise, position=i, computed_at=now)
            for i, t in enumerate(trends)
        ])
    _last_run[window] = now
    return trends


async def refresh_due() -> None:
    """The sweep: recompute each window whose last run (in this process) is older than its
    REFRESH period. Running twice in two processes only rewrites the same rows."""
    now = datetime.now(UTC)
    for window in TrendWindow:
        last = _last_run.get(window)
        if last is None or now - last >= REFRESH[window]:
            await compute(window, now)


# -- reads --------------------------------------------------------------------------------


def _size(first: int) -> int:
    if not 0 <= first <= PAGE_MAX:
        raise invalid("first", f"first must be between 0 and {PAGE_MAX}.")
    return first


async def trending_keywords(actor: Actor, window: TrendWindow, first: int = 50) -> list[TrendingTerm] | None:
    """Staff only (None for anyone else): the window's rising terms, strongest first."""
    if not permissions.allowed(actor, Action.READ_TRENDS):
        return None
    return list(await TrendingTerm.filter(window=window).order_by("position").limit(_size(first)))


def _publishable(term: str) -> bool:
    try:
        screened = content.screen({"keyword": term})
    except UserFacingError:
        return False
    return not screened.hold_words and screened.texts["keyword"] == term


async def trending_topics(first: int = 10) -> list[str]:
    """Public: the day's rising keywords that people wrote about and the content filter allows."""
    size = _size(first)
    rows = await TrendingTerm.filter(window=TrendWindow.DAY, content_count__gt=0).order_by("position").limit(
        size * 2 + 10
    )
    return [row.term for row in rows if _publishable(row.term)][:size]
