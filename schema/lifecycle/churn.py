"""A buyer's churn risk in the graph (staff only; resolvers/lifecycle/churn.py decides)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from models.lifecycle.churn import ChurnScore
from models.lifecycle.churn import RiskBand as RiskBandValue
from schema.base import describe_values

RiskBand = describe_values(
    strawberry.enum(RiskBandValue, name="RiskBand", description="How likely a buyer is to stop buying."),
    LOW="Likely to buy again within 90 days, no warning signs.",
    MEDIUM="The model or one warning sign says the buyer is slipping away.",
    HIGH="Unlikely to buy again within 90 days, or slipping with warning signs.",
)


@strawberry.type(description="A buyer's churn risk as of the last fit: BG/NBD and Gamma-Gamma figures over the next "
                             "90 days, and article 004's warning signs.")
class ChurnRisk:
    band: RiskBand = strawberry.field(description="The risk band: the model's base band, one step up per sign.")
    p_alive: float = strawberry.field(description="Probability (0 to 1) that the buyer is still an active customer.")
    expected_purchases_90d: float = strawberry.field(description="Expected purchases (buyer-weeks) in the next 90 days.")
    expected_spend_90d: Decimal = strawberry.field(description="Expected spend in the next 90 days (CNY).")
    signs: list[str] = strawberry.field(
        description="Warning signs present: VISITS_FALLING, ABANDONED_CHECKOUTS, AFTER_SALES_COMPLAINTS."
    )
    visits_last_30_days: int = strawberry.field(description="Page visits and product views in the last 30 days.")
    abandoned_checkouts_90d: int = strawberry.field(description="Unpaid orders cancelled in the last 90 days.")
    complaints_90d: int = strawberry.field(description="Refunded orders in the last 90 days.")
    scored_at: datetime = strawberry.field(description="When the risk was computed.")

    @classmethod
    def of(cls, row: ChurnScore) -> ChurnRisk:
        return cls(band=row.band, p_alive=row.p_alive, expected_purchases_90d=row.expected_purchases_90d,
                   expected_spend_90d=Decimal(row.expected_spend_90d), signs=[s for s in row.signs.split(",") if s],
                   visits_last_30_days=row.visits_recent, abandoned_checkouts_90d=row.abandoned_checkouts,
                   complaints_90d=row.complaints, scored_at=row.scored_at)
