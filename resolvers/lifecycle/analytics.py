"""Retention analytics (issue 12 item 5): the metrics article 002 reports before and after,
from real orders, behaviour events and notifications, for staff (ADMIN: business data).

Definitions (docs/api.md repeats them for the API's readers):

* A **purchase** is an order with a buyer, paid, and not refunded or failed (PAID, DELIVERING,
  DELIVERED, COMPLETED); its time is ``paid_at``, its revenue ``total`` (after discounts).
* Over the period [start, end): **buyers** made at least one purchase in it; the **repurchase
  rate** is the share of them with two or more, the **single-purchase share** the share with
  exactly one; **mean days between purchases** averages every gap between a repeater's
  consecutive purchases in the period; the **cross-category rate** is the share of buyers
  whose purchases span two or more product categories.
* A **visit** is a (user, UTC day) with any PAGE_VISIT, PRODUCT_VIEW, POST_VIEW or SEARCH
  event; **visits per user per month** is visits / visiting users, month by month and over
  the period (visits over user-months). The **unprompted return share** is the share of
  visiting user-months (a user who visited in a month) with at least one visit event that no
  notification to that user preceded within 24 hours (campaign messages reach users as in-app
  notifications, so they count as prompts); ``users`` is the distinct visitors. Per month, not
  per user: over a year nearly every active user comes once unprompted.
* **Cohort** = UTC month of a buyer's first purchase ever (cohorts starting in the period);
  **retention[k]** = share of the cohort that purchased in month cohort + k (k = 0 is 1);
  **LTV[k]** = revenue of the cohort's buyers in months cohort..cohort + k / cohort size.
  The pooled curves weigh every cohort that has reached age k by its size. The current
  month counts though it is not over.
* **Suppression**: an aggregate over fewer than ``MIN_GROUP`` users (its denominator) is
  null with ``suppressed`` set, and so is its user count.
* **NPS** = percent of promoters (9-10) minus percent of detractors (0-6) among the
  post-purchase survey answers given in the period (resolvers/lifecycle/surveys.py);
  ``users`` is the number of answers.
* **Segment sizes** are the daily counts the segments sweep stores (suppressed per cell under
  MIN_GROUP in the report); **campaign uplift** is resolvers/lifecycle/campaign_results.py's,
  for the latest campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from kameng import clock
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.errors import invalid
from resolvers.lifecycle import analytics_sql as q
from resolvers.lifecycle import campaign_results, segments, surveys
from resolvers.lifecycle.campaign_results import CampaignResult

MIN_GROUP = 5
MAX_PERIOD_DAYS = 366 * 5
DEFAULT_MONTHS = 12


@dataclass(frozen=True, slots=True)
class Measure:
    """A value over ``users`` users; both None when fewer than MIN_GROUP (``suppressed``)."""

    value: float | None
    users: int | None
    suppressed: bool


def over(value: float, users: int) -> Measure:
    """``value``, an aggregate over ``users`` users, or suppressed."""
    if users < MIN_GROUP:
        return Measure(None, None, True)
    return Measure(float(value), users, False)


def measure(numerator: float, users: int) -> Measure:
    """``numerator / users``, or suppressed."""
    return over(float(numerator) / users if users else 0.0, users)


@dataclass(frozen=True, slots=True)
class MonthVisits:
    month: str  # "YYYY-MM"
    visits_per_user: Measure


@dataclass(frozen=True, slots=True)
class Cohort:
    month: str
    size: int | None
    suppressed: bool
    #: Index k: share of the cohort buying in month k (None where suppressed).
    retention: list[float | None]
    #: Index k: cumulative revenue per buyer up to month k.
    ltv: list[Decimal | None]


@dataclass(frozen=True, slots=True)
class Retention:
    start: date
    end: date  # exclusive
    min_group: int
    buyers: Measure  # value: the count itself (1.0 per buyer)
    repurchase_rate: Measure
    single_purchase_share: Measure
    mean_days_between_purchases: Measure
    cross_category_rate: Measure
    unprompted_return_share: Measure
    visits_per_user_per_month: Measure
    monthly_visits: list[MonthVisits]
    cohorts: list[Cohort]
    retention_curve: list[Measure]  # index k, pooled over cohorts that reached age k
    ltv_curve: list[Measure]
    notes: list[str] = field(default_factory=list)
    nps: Measure = field(default_factory=lambda: Measure(None, None, True))
    segment_sizes: list[SegmentCount] = field(default_factory=list)
    campaign_uplift: list[CampaignResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SegmentCount:
    day: date
    segment: str
    buyers: int


def month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def default_period(today: date | None = None) -> tuple[date, date]:
    """The last DEFAULT_MONTHS calendar months, the current one included."""
    today = today or clock.now().date()
    first = month_index(today) - (DEFAULT_MONTHS - 1)
    return date(first // 12, first % 12 + 1, 1), today + timedelta(days=1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def retention(actor: Actor, start: date | None = None, end: date | None = None) -> Retention:
    """Staff: the retention metrics over [start, end) (default: the last 12 months)."""
    permissions.require(actor, Action.READ_ANALYTICS)
    return await compute(start, end)


async def compute(start: date | None = None, end: date | None = None) -> Retention:
    """The metrics without a permission check: for `kameng report`, run by the operator."""
    default_start, default_end = default_period()
    start, end = start or default_start, end or default_end
    if start >= end:
        raise invalid("since", "The period must start before it ends.")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise invalid("until", f"The period may span at most {MAX_PERIOD_DAYS} days.")
    d = q.dialect()
    begin, finish = _midnight(start), _midnight(end)

    totals = await q.buyer_totals(d, begin, finish)
    buyers, repeaters = int(totals["buyers"]), int(totals["repeaters"])
    gaps = int(totals["gaps"])
    mean_gap = over(float(totals["gap_days"]) / gaps if gaps else 0.0, repeaters)

    visits = await q.monthly_visits(d, begin, finish)
    monthly = [MonthVisits(month_name(int(r["m"])), measure(int(r["visits"]), int(r["users"]))) for r in visits]
    user_months = sum(int(r["users"]) for r in visits)
    all_visits = sum(int(r["visits"]) for r in visits)
    unprompted = await q.unprompted_visitors(d, begin, finish)
    distinct_visitors = int(unprompted["visitors"])
    # Over the user-months, suppressed when fewer than MIN_GROUP distinct users visited.
    per_month = over(all_visits / user_months if user_months else 0.0, distinct_visitors)

    first_month, last_month = month_index(start), month_index(end - timedelta(days=1))
    cohorts, retention_curve, ltv_curve = _cohorts(await q.cohort_cells(d, first_month, last_month), last_month)

    return Retention(
        start=start, end=end, min_group=MIN_GROUP,
        buyers=over(buyers, buyers),
        repurchase_rate=measure(repeaters, buyers),
        single_purchase_share=measure(int(totals["singles"]), buyers),
        mean_days_between_purchases=mean_gap,
        cross_category_rate=measure(int(totals["cross_buyers"]), buyers),
        unprompted_return_share=over(int(unprompted["unprompted"]) / max(int(unprompted["user_months"]), 1),
                                     distinct_visitors),
        visits_per_user_per_month=per_month,
        monthly_visits=monthly,
        cohorts=cohorts,
        retention_curve=retention_curve,
        ltv_curve=ltv_curve,
        nps=over(*(await surveys.nps(begin, finish))),
        segment_sizes=[SegmentCount(row.day, row.segment_key, row.buyers)
                       for row in await segments.size_history(start, end)],
        campaign_uplift=await campaign_results.all_results(),
    )


def _cohorts(cells: list[dict], last_month: int) -> tuple[list[Cohort], list[Measure], list[Measure]]:
    """Cohort rows, and the curves pooled over cohorts, from the (cohort, k) cells."""
    by_cohort: dict[int, dict[int, tuple[int, Decimal]]] = {}
    for cell in cells:
        by_cohort.setdefault(int(cell["cohort"]), {})[int(cell["k"])] = (
            int(cell["buyers"]), Decimal(str(cell["revenue"] or 0)))
    cohorts: list[Cohort] = []
    ages = 0
    pooled_buyers: dict[int, int] = {}
    pooled_revenue: dict[int, Decimal] = {}
    pooled_size: dict[int, int] = {}
    for c in sorted(by_cohort):
        row = by_cohort[c]
        size = row.get(0, (0, Decimal(0)))[0]
        reached = last_month - c + 1
        ages = max(ages, reached)
        cumulative = Decimal(0)
        shares: list[float | None] = []
        values: list[Decimal | None] = []
        for k in range(reached):
            buyers_k, revenue_k = row.get(k, (0, Decimal(0)))
            cumulative += revenue_k
            pooled_buyers[k] = pooled_buyers.get(k, 0) + buyers_k
            pooled_revenue[k] = pooled_revenue.get(k, Decimal(0)) + cumulative
            pooled_size[k] = pooled_size.get(k, 0) + size
            small = size < MIN_GROUP
            shares.append(None if small else buyers_k / size)
            values.append(None if small else (cumulative / size).quantize(Decimal("0.01")))
        small = size < MIN_GROUP
        cohorts.append(Cohort(month_name(c), None if small else size, small, shares, values))
    retention_curve = [measure(pooled_buyers[k], pooled_size[k]) for k in range(ages)]
    ltv_curve = [measure(float(pooled_revenue[k]), pooled_size[k]) for k in range(ages)]
    return cohorts, retention_curve, ltv_curve
