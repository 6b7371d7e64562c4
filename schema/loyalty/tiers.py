"""Membership tiers in the graph (what they give: resolvers/loyalty/tiers.py)."""

from __future__ import annotations

import strawberry

from models.accounts.users import Tier as TierValue

Tier = strawberry.enum(TierValue, name="Tier", description="Membership tier.")
