"""Membership tiers in the graph (what they give: resolvers/loyalty/tiers.py)."""

from __future__ import annotations

import strawberry

from schema.base import describe_values

from models.accounts.users import Tier as TierValue

Tier = describe_values(
    strawberry.enum(
        TierValue, name="Tier",
        description="Membership tier, recomputed from the last 12 months' spend and points; higher tiers get a "
                    "member discount and a larger share of an order payable in points.",
    ),
    NORMAL="Every account to begin with.",
    SILVER="The middle tier.",
    GOLD="The top tier.",
)
