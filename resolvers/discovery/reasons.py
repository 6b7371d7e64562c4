"""Why a product is recommended: a kind a client can style and a text it can show.

A reason travels inside the precomputed lists as ``[kind, text, reference]``; the reference is
the product or post it points at (null for the cold-start kinds).
"""

from __future__ import annotations

from enum import StrEnum


class ReasonKind(StrEnum):
    BECAUSE_YOU_BOUGHT = "BECAUSE_YOU_BOUGHT"
    POPULAR_WITH_BUYERS_OF = "POPULAR_WITH_BUYERS_OF"
    FROM_GUIDE_YOU_READ = "FROM_GUIDE_YOU_READ"
    TRENDING_IN_CIRCLE = "TRENDING_IN_CIRCLE"
    TRENDING = "TRENDING"
    NEW_AND_WELL_REVIEWED = "NEW_AND_WELL_REVIEWED"


class Reason:
    """Builders of ``[kind, text, reference]``."""

    @staticmethod
    def because_you_bought(product_id: int, title: str) -> list[object]:
        return [ReasonKind.BECAUSE_YOU_BOUGHT.value, f"Because you bought {title}", product_id]

    @staticmethod
    def popular_with_buyers_of(product_id: int, title: str) -> list[object]:
        return [ReasonKind.POPULAR_WITH_BUYERS_OF.value, f"Popular with buyers of {title}", product_id]

    @staticmethod
    def from_guide(post_id: int, title: str) -> list[object]:
        return [ReasonKind.FROM_GUIDE_YOU_READ.value, f"From the guide you read: {title}", post_id]

    @staticmethod
    def trending_in_circle(product_id: int, title: str) -> list[object]:
        return [ReasonKind.TRENDING_IN_CIRCLE.value, f"Trending in the {title} circle", product_id]

    @staticmethod
    def trending() -> list[object]:
        return [ReasonKind.TRENDING.value, "Trending now", None]

    @staticmethod
    def new_and_reviewed() -> list[object]:
        return [ReasonKind.NEW_AND_WELL_REVIEWED.value, "New and well reviewed", None]

    @staticmethod
    def re_reason(row: list[object], kind: ReasonKind, text: str, reference: object) -> list[object]:
        """``row`` (a list entry) with another reason."""
        return [row[0], row[1], kind.value, text, reference]
