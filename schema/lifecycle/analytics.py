"""Retention analytics in the graph: the `retentionAnalytics` staff query (ADMIN).

Answered as a payload with `errors` (like a mutation's): a refused or invalid request gets
FORBIDDEN / UNAUTHENTICATED / INVALID_INPUT there and no data.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import strawberry

from resolvers.lifecycle import analytics
from schema.base import PayloadErrors, UserError, errors_field
from schema.context import Info


@strawberry.type(description="An aggregate over a group of users; null (and `suppressed`) when the group has fewer "
                             "users than `RetentionAnalytics.minGroup`.")
class RetentionMeasure:
    value: float | None = strawberry.field(description="The value; null when suppressed.")
    users: int | None = strawberry.field(description="How many users it is computed over; null when suppressed.")
    suppressed: bool = strawberry.field(description="True when the group was too small to report.")

    @classmethod
    def of(cls, m: analytics.Measure) -> RetentionMeasure:
        return cls(value=m.value, users=m.users, suppressed=m.suppressed)


@strawberry.type(description="Visits per visiting user in one calendar month (UTC).")
class MonthlyVisits:
    month: str = strawberry.field(description="The month, `YYYY-MM`.")
    visits_per_user: RetentionMeasure = strawberry.field(
        description="Visits (distinct user-days with a browsing event) per visiting user; `users` is the visitors.")


@strawberry.type(description="Buyers whose first purchase ever fell in one month, and what they did after.")
class RetentionCohort:
    month: str = strawberry.field(description="The cohort's month, `YYYY-MM` (UTC).")
    size: int | None = strawberry.field(description="Buyers in the cohort; null when suppressed.")
    suppressed: bool = strawberry.field(description="True when the cohort is too small to report: every cell is null.")
    retention: list[float | None] = strawberry.field(
        description="Index k: the share of the cohort that purchased in month k after its first (k = 0 is 1), up "
                    "to the period's last month.")
    ltv: list[Decimal | None] = strawberry.field(
        description="Index k: revenue of the cohort up to month k, per buyer of the cohort (decimal string, CNY).")


@strawberry.type(description="Retention metrics over a period, from real orders, behaviour events and notifications. "
                             "Definitions in docs/api.md (Retention analytics).")
class RetentionAnalytics:
    since: date = strawberry.field(description="First day of the period (UTC).")
    until: date = strawberry.field(description="Day after the period (exclusive).")
    min_group: int = strawberry.field(description="Aggregates over fewer users than this are suppressed.")
    buyers: RetentionMeasure = strawberry.field(description="Buyers with a purchase in the period (`value` = count).")
    repurchase_rate: RetentionMeasure = strawberry.field(description="Share of the period's buyers with 2+ purchases.")
    single_purchase_share: RetentionMeasure = strawberry.field(
        description="Share of the period's buyers with exactly one purchase.")
    mean_days_between_purchases: RetentionMeasure = strawberry.field(
        description="Mean gap in days between consecutive purchases of repeat buyers (`users` = repeaters).")
    cross_category_rate: RetentionMeasure = strawberry.field(
        description="Share of the period's buyers who bought in two or more product categories.")
    unprompted_return_share: RetentionMeasure = strawberry.field(
        description="Share of visiting user-months with a visit that no notification preceded within 24 hours "
                    "(`users` = distinct visitors).")
    visits_per_user_per_month: RetentionMeasure = strawberry.field(
        description="Visits per visiting user and month over the period (`users` = distinct visitors).")
    monthly_visits: list[MonthlyVisits] = strawberry.field(description="Visits per user, month by month.")
    cohorts: list[RetentionCohort] = strawberry.field(description="Monthly cohorts starting in the period, oldest first.")
    retention_curve: list[RetentionMeasure] = strawberry.field(
        description="Index k: share buying in month k, pooled over the cohorts that reached age k.")
    ltv_curve: list[RetentionMeasure] = strawberry.field(
        description="Index k: mean revenue per buyer (CNY) up to month k, pooled over cohorts that reached age k.")
    notes: list[str] = strawberry.field(description="What is not reported and why.")
    nps: RetentionMeasure = strawberry.field(
        description="Net promoter score of the post-purchase survey answers given in the period: percent of 9-10 "
                    "minus percent of 0-6 (`users` = answers).")

    @classmethod
    def of(cls, r: analytics.Retention) -> RetentionAnalytics:
        m = RetentionMeasure.of
        return cls(
            since=r.start, until=r.end, min_group=r.min_group, buyers=m(r.buyers), repurchase_rate=m(r.repurchase_rate),
            single_purchase_share=m(r.single_purchase_share),
            mean_days_between_purchases=m(r.mean_days_between_purchases),
            cross_category_rate=m(r.cross_category_rate), unprompted_return_share=m(r.unprompted_return_share),
            visits_per_user_per_month=m(r.visits_per_user_per_month),
            monthly_visits=[MonthlyVisits(month=v.month, visits_per_user=m(v.visits_per_user)) for v in r.monthly_visits],
            cohorts=[RetentionCohort(month=c.month, size=c.size, suppressed=c.suppressed, retention=c.retention,
                                     ltv=c.ltv) for c in r.cohorts],
            retention_curve=[m(x) for x in r.retention_curve], ltv_curve=[m(x) for x in r.ltv_curve], notes=r.notes,
            nps=m(r.nps),
        )


@strawberry.input(description="The period of `retentionAnalytics`.")
class RetentionAnalyticsInput:
    since: date | None = strawberry.field(
        default=None, description="First day (UTC); default: the first day of the month 11 months ago.")
    until: date | None = strawberry.field(default=None, description="Day after the last (exclusive); default: tomorrow.")


@strawberry.type(description="Result of `retentionAnalytics`.")
class RetentionAnalyticsPayload:
    errors: list[UserError] = errors_field()
    analytics: RetentionAnalytics | None = strawberry.field(default=None, description="The metrics; null on failure.")


@strawberry.type(description="Lifecycle queries for staff.")
class AnalyticsQueries:
    @strawberry.field(
        description="ADMIN: retention metrics over a period (repurchase, visits, cohorts, LTV); aggregates over fewer "
                    "than 5 users are suppressed.",
        extensions=[PayloadErrors()],
    )
    async def retention_analytics(
        self, info: Info, input: RetentionAnalyticsInput | None = None
    ) -> RetentionAnalyticsPayload:
        period = input or RetentionAnalyticsInput()
        result = await analytics.retention(info.context.actor, period.since, period.until)
        return RetentionAnalyticsPayload(analytics=RetentionAnalytics.of(result))
