"""Trending keywords in the graph: `trendingKeywords` for staff, `trendingTopics` for everyone
(resolvers/discovery/trending.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from models.discovery.trending import TrendWindow as TrendWindowValue
from resolvers.discovery import trending
from schema.base import describe_values
from schema.context import Info

TrendWindow = describe_values(
    strawberry.enum(TrendWindowValue, name="TrendWindow",
                    description="The span compared with the span just before it."),
    HOUR="The last hour against the hour before (recomputed every 5 minutes).",
    DAY="The last 24 hours against the 24 before (recomputed every 30 minutes).",
    WEEK="The last 7 days against the 7 before (recomputed every 3 hours).",
)


@strawberry.type(description="A term rising in posts, comments and searches.")
class TrendingKeyword:
    keyword: str = strawberry.field(description="The term, as segmented (lower case).")
    count: int = strawberry.field(description="People who used it in the window (posted, commented or searched).")
    previous_count: int = strawberry.field(description="The same over the window before.")
    content_count: int = strawberry.field(description="People who used it in posts or comments (not searches).")
    rise: float = strawberry.field(description="(count + 2) / (previousCount + 2): above 1.5 to trend.")


@strawberry.type(description="The rising terms of one window, as last computed.")
class TrendingKeywords:
    window: TrendWindow = strawberry.field(description="The window compared.")
    computed_at: datetime | None = strawberry.field(description="When they were computed; null if none rose.")
    keywords: list[TrendingKeyword] = strawberry.field(description="Strongest rise first.")


@strawberry.type(description="Trending keywords.")
class TrendingQueries:
    @strawberry.field(description="Staff (merchandising): terms rising in posts, comments and searches, with their "
                                  "counts; null for anyone else.")
    async def trending_keywords(
        self,
        info: Info,
        window: Annotated[TrendWindow, strawberry.argument(description="Which window.")] = TrendWindowValue.DAY,
        first: Annotated[int, strawberry.argument(description="At most this many terms (0 to 100).")] = 50,
    ) -> TrendingKeywords | None:
        rows = await trending.trending_keywords(info.context.actor, window, first)
        if rows is None:
            return None
        return TrendingKeywords(
            window=window,
            computed_at=rows[0].computed_at if rows else None,
            keywords=[
                TrendingKeyword(keyword=r.term, count=r.count, previous_count=r.previous_count,
                                content_count=r.content_count, rise=r.rise)
                for r in rows
            ],
        )

    @strawberry.field(description="Keywords people are writing about more today than yesterday, strongest first "
                                  "(from posts and comments; filtered words left out).")
    async def trending_topics(
        self, first: Annotated[int, strawberry.argument(description="At most this many (0 to 100).")] = 10
    ) -> list[str]:
        return await trending.trending_topics(first)
