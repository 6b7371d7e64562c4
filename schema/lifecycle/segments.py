"""Segments in the graph: a buyer's RFM, stage, segment and churn risk for staff, the
benefits a segment brings for the user, and the rules staff edit."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from models.lifecycle.segments import BuyerRfm, SegmentRule as RuleModel
from models.lifecycle.segments import Stage as StageValue
from resolvers.lifecycle import churn, segments
from resolvers.errors import invalid
from resolvers.lifecycle.segments import RuleInput
from schema.base import UserError, decode_id, describe_values, errors_field, mutation
from schema.context import Info
from schema.lifecycle.churn import ChurnRisk

Stage = describe_values(
    strawberry.enum(StageValue, name="LifecycleStage", description="Where a buyer is in their life with the shop."),
    NEW="One purchase, a recent one.",
    ACTIVE="Bought within the silent threshold (30 days by default).",
    SILENT="No purchase for 30 days (KAMENG_LIFECYCLE_SILENT_DAYS).",
    LAPSED="No purchase for 90 days (KAMENG_LIFECYCLE_LAPSED_DAYS).",
)


@strawberry.type(description="A named segment: a buyer is in the first active rule, by priority, whose every set "
                             "bound holds.")
class SegmentRule:
    id: strawberry.ID = strawberry.field(description="The rule's global ID.")
    key: str = strawberry.field(description="Stable identifier, e.g. `loyal-high-value`.")
    name: str = strawberry.field(description="Name staff see.")
    description: str = strawberry.field(description="What the rule is for.")
    benefits: str = strawberry.field(description="What the segment brings its buyers: the only part they see.")
    priority: int = strawberry.field(description="Lower is tried first.")
    active: bool = strawberry.field(description="Inactive rules match nobody (rules are never deleted).")
    stage: Stage | None = strawberry.field(description="The lifecycle stage required; null: any.")
    recency_days_min: int | None = strawberry.field(description="Days since the last purchase, at least.")
    recency_days_max: int | None = strawberry.field(description="Days since the last purchase, at most.")
    frequency_min: int | None = strawberry.field(description="Completed orders, at least.")
    frequency_max: int | None = strawberry.field(description="Completed orders, at most.")
    monetary_min: Decimal | None = strawberry.field(description="Total spend, at least.")
    monetary_max: Decimal | None = strawberry.field(description="Total spend, below.")

    @classmethod
    def of(cls, rule: RuleModel) -> SegmentRule:
        return cls(
            id=strawberry.ID(str(strawberry.relay.GlobalID("SegmentRule", str(rule.id)))), key=rule.key, name=rule.name,
            description=rule.description, benefits=rule.benefits, priority=rule.priority, active=rule.active,
            stage=rule.stage, recency_days_min=rule.recency_days_min, recency_days_max=rule.recency_days_max,
            frequency_min=rule.frequency_min, frequency_max=rule.frequency_max,
            monetary_min=Decimal(rule.monetary_min) if rule.monetary_min is not None else None,
            monetary_max=Decimal(rule.monetary_max) if rule.monetary_max is not None else None,
        )


@strawberry.type(description="A buyer's lifecycle, as last computed: RFM, stage, segment and churn risk (staff only).")
class BuyerLifecycle:
    recency_days: int = strawberry.field(description="Days since the last completed order.")
    frequency: int = strawberry.field(description="Completed orders.")
    monetary: Decimal = strawberry.field(description="Total of the completed orders.")
    r_score: int = strawberry.field(description="Recency quintile among buyers, 1 to 5 (5: most recent).")
    f_score: int = strawberry.field(description="Frequency quintile among buyers, 1 to 5.")
    m_score: int = strawberry.field(description="Monetary quintile among buyers, 1 to 5.")
    stage: Stage = strawberry.field(description="The lifecycle stage.")
    segment: SegmentRule | None = strawberry.field(description="The segment; null if no active rule matches.")
    risk: ChurnRisk | None = strawberry.field(description="Churn risk; null until the churn job scored the buyer.")
    computed_at: datetime = strawberry.field(description="When the RFM was computed.")


def _lifecycle(row: BuyerRfm, rule: RuleModel | None, risk: ChurnRisk | None) -> BuyerLifecycle:
    return BuyerLifecycle(
        recency_days=row.recency_days, frequency=row.frequency, monetary=Decimal(row.monetary), r_score=row.r_score,
        f_score=row.f_score, m_score=row.m_score, stage=row.stage, segment=SegmentRule.of(rule) if rule else None,
        risk=risk, computed_at=row.computed_at,
    )


@strawberry.type(description="Segments and churn risk.")
class LifecycleQueries:
    @strawberry.field(description="A buyer's RFM, stage, segment and churn risk: staff only; null for anyone else "
                                  "and for users without a completed order.")
    async def buyer_lifecycle(
        self, info: Info, user_id: Annotated[strawberry.ID, strawberry.argument(description="The user's global ID.")]
    ) -> BuyerLifecycle | None:
        key = decode_id(user_id, "User", "userId")
        row = await segments.rfm_for_staff(info.context.actor, key)
        if row is None:
            return None
        rule = await segments.segment_of(key)
        score = await churn.score_for_staff(info.context.actor, key)
        return _lifecycle(row, rule, ChurnRisk.of(score) if score is not None else None)

    @strawberry.field(description="What the viewer's segment brings them (never the segment itself); null when "
                                  "signed out or when their segment brings nothing.")
    async def my_benefits(self, info: Info) -> str | None:
        actor = info.context.actor
        return await segments.benefits_for(actor, actor.user_id) if actor.user_id is not None else None

    @strawberry.field(description="Every segment rule, by priority, inactive ones too (staff only; empty for anyone "
                                  "else).")
    async def segment_rules(self, info: Info) -> list[SegmentRule]:
        return [SegmentRule.of(rule) for rule in await segments.list_rules(info.context.actor)]


@strawberry.input(description="A segment rule's fields. On update, a field left null keeps its value; list bounds "
                              "to unset in `clear`.")
class SegmentRuleInput:
    id: strawberry.ID | None = strawberry.field(default=None, description="updateSegmentRule: the rule's global ID.")
    key: str | None = strawberry.field(default=None, description="Stable identifier (required to create; unique).")
    name: str | None = strawberry.field(default=None, description="Name (required to create; 80 characters).")
    description: str | None = strawberry.field(default=None, description="What it is for (500 characters).")
    benefits: str | None = strawberry.field(default=None, description="What it brings its buyers (500 characters).")
    priority: int | None = strawberry.field(default=None, description="Lower is tried first (default 100).")
    active: bool | None = strawberry.field(default=None, description="False turns the rule off.")
    stage: Stage | None = strawberry.field(default=None, description="Lifecycle stage required.")
    recency_days_min: int | None = strawberry.field(default=None, description="Days since the last purchase, at least.")
    recency_days_max: int | None = strawberry.field(default=None, description="Days since the last purchase, at most.")
    frequency_min: int | None = strawberry.field(default=None, description="Completed orders, at least.")
    frequency_max: int | None = strawberry.field(default=None, description="Completed orders, at most.")
    monetary_min: str | None = strawberry.field(default=None, description='Total spend, at least (decimal, "200.00").')
    monetary_max: str | None = strawberry.field(default=None, description="Total spend, below (decimal).")
    clear: list[str] | None = strawberry.field(
        default=None, description="Bounds to unset: stage, recencyDaysMin, recencyDaysMax, frequencyMin, frequencyMax, "
                                 "monetaryMin, monetaryMax."
    )

    def data(self) -> RuleInput:
        return RuleInput(
            key=self.key, name=self.name, description=self.description, benefits=self.benefits, priority=self.priority,
            active=self.active, stage=StageValue(self.stage) if self.stage is not None else None,
            recency_days_min=self.recency_days_min, recency_days_max=self.recency_days_max,
            frequency_min=self.frequency_min, frequency_max=self.frequency_max,
            monetary_min=self.monetary_min, monetary_max=self.monetary_max,  # type: ignore[arg-type]
            clear=tuple(self.clear or ()),
        )


@strawberry.type(description="Result of `createSegmentRule` and `updateSegmentRule`.")
class SegmentRulePayload:
    errors: list[UserError] = errors_field()
    rule: SegmentRule | None = strawberry.field(default=None, description="The rule as saved.")


@strawberry.type(description="Segment rules (ADMIN).")
class LifecycleMutations:
    @mutation(description="An ADMIN adds a segment rule; buyers move into it at the next recompute (queued now).")
    async def create_segment_rule(self, info: Info, input: SegmentRuleInput) -> SegmentRulePayload:
        rule = await segments.create_rule(info.context.actor, input.data())
        return SegmentRulePayload(rule=SegmentRule.of(rule))

    @mutation(description="An ADMIN changes a segment rule (or turns it off with `active: false`); buyers are "
                          "recomputed (queued now).")
    async def update_segment_rule(self, info: Info, input: SegmentRuleInput) -> SegmentRulePayload:
        if input.id is None:
            raise invalid("id", "Give the rule's ID.")
        rule = await segments.update_rule(info.context.actor, decode_id(input.id, "SegmentRule", "id"), input.data())
        return SegmentRulePayload(rule=SegmentRule.of(rule))
