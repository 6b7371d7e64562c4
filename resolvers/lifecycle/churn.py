"""Churn risk per buyer: the repeat-buying model (BG/NBD for purchases, Gamma-Gamma for
spend; resolvers/lifecycle/bgnbd.py) fitted on every buyer's completed orders, plus the
warning signs article 004 names, combined into one band.

- The model gives P(alive), the expected purchases and spend over the next 90 days, and the
  probability of no purchase at all in them (``1 - P(buy again)``): the base band is HIGH at
  0.8 or more, MEDIUM at 0.5 or more, else LOW.
- Each warning sign moves the band one step up: falling visits (PAGE_VISIT and PRODUCT_VIEW
  of the last 30 days under half the monthly rate of the 60 days before, of at least 2),
  abandoned checkouts (2 or more unpaid orders cancelled in 90 days), after-sales complaints
  (an order complained about in 90 days: an after-sales ticket opened on it, a claim filed
  on it, or its refund; counted once per order however many of these it had). Only events
  the user let be personalised count.

Fitted and scored by the ``fit_churn`` job and the periodic sweep; a run replaces every
score in one transaction. With fewer than ``KAMENG_CHURN_MIN_BUYERS`` buyers the last fit is
kept, or, with none, ``PRIOR`` (the fit on CDNOW, 1997-09-30) stands in.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import structlog
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from kameng.settings import get_settings
from models.commerce.orders import Order, OrderStatus
from models.discovery.events import BehaviourEvent, EventKind
from models.lifecycle.churn import ChurnModel, ChurnScore, RiskBand
from models.trust.claims import Claim
from models.trust.tickets import Ticket
from resolvers.accounts import profiling
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action, allowed
from resolvers.lifecycle import bgnbd, evaluation, rfm

log = structlog.get_logger("kameng.churn")

PRIOR = bgnbd.BgNbd(r=0.286, alpha=6.76, a=0.656, b=2.22)
HORIZON_DAYS = 90
BANDS = (RiskBand.LOW, RiskBand.MEDIUM, RiskBand.HIGH)
VISITS = (EventKind.PAGE_VISIT, EventKind.PRODUCT_VIEW)


def base_band(p_no_purchase: float) -> RiskBand:
    if p_no_purchase >= 0.8:
        return RiskBand.HIGH
    return RiskBand.MEDIUM if p_no_purchase >= 0.5 else RiskBand.LOW


def band_with(base: RiskBand, signs: list[str]) -> RiskBand:
    return BANDS[min(len(BANDS) - 1, BANDS.index(base) + len(signs))]


async def fit(now: datetime | None = None) -> ChurnModel | None:
    """Refit on every buyer if there are enough of them; the stored model, or None."""
    now = now or datetime.now(UTC)
    days = evaluation.buyer_days((k, when, total) for k, rows in (await rfm.purchases()).items() for when, total in rows)
    summary = evaluation.summarise(days, now.date())
    if len(summary.keys) < get_settings().churn_min_buyers:
        return await ChurnModel.all().order_by("-id").first()
    try:
        # CPU work (a second or so on 20,000 buyers): off the event loop.
        params = await asyncio.to_thread(bgnbd.fit_bgnbd, summary.x, summary.t_x, summary.T)
    except ValueError as exc:
        log.warning("churn.fit_failed", error=str(exc))
        return await ChurnModel.all().order_by("-id").first()
    spend: bgnbd.GammaGamma | None
    try:
        spend = await asyncio.to_thread(bgnbd.fit_gamma_gamma, summary.x, summary.mean_spend)
        if spend.q <= 1:  # the mean spend would be infinite
            spend = None
    except ValueError:
        spend = None
    return await ChurnModel.create(
        r=params.r, alpha=params.alpha, a=params.a, b=params.b, p=spend.p if spend else None,
        q=spend.q if spend else None, gamma=spend.gamma if spend else None, buyers=len(summary.keys), fitted_at=now,
    )


async def _counts(query, key: str) -> dict[int, int]:  # type: ignore[no-untyped-def]
    rows = await query.annotate(n=Count("id")).group_by(key).values(key, "n")
    return {int(row[key]): int(row["n"]) for row in rows if row[key] is not None}


async def warning_signs(now: datetime) -> dict[str, dict[int, int]]:
    """{sign's counter: {user: count}} for every user with any."""
    recent, before, horizon = now - timedelta(days=30), now - timedelta(days=90), now - timedelta(days=HORIZON_DAYS)
    visits = BehaviourEvent.filter(kind__in=VISITS, user_id__isnull=False, personalised=True)
    return {
        "visits_recent": await _counts(visits.filter(occurred_at__gte=recent), "user_id"),
        "visits_before": await _counts(visits.filter(occurred_at__gte=before, occurred_at__lt=recent), "user_id"),
        "abandoned": await _counts(Order.filter(status=OrderStatus.CANCELLED, paid_at__isnull=True,
                                                created_at__gte=horizon, buyer_id__isnull=False), "buyer_id"),
        "complaints": await complaints(horizon),
    }


async def complaints(since: datetime) -> dict[int, int]:
    """{buyer: orders complained about since ``since``}: a ticket opened, a claim filed or a
    refund, each order once (a claim from a ticket that ended in a refund is one complaint)."""
    pairs: set[tuple[int, int]] = set()
    for rows in (
        await Order.filter(status=OrderStatus.REFUNDED, updated_at__gte=since, buyer_id__isnull=False)
        .values_list("buyer_id", "id"),
        await Ticket.filter(created_at__gte=since).values_list("buyer_id", "order_id"),
        await Claim.filter(created_at__gte=since).values_list("buyer_id", "order_id"),
    ):
        pairs.update((int(buyer), int(order)) for buyer, order in rows)
    counts: dict[int, int] = {}
    for buyer, _ in pairs:
        counts[buyer] = counts.get(buyer, 0) + 1
    return counts


def signs_of(visits_recent: int, visits_before: int, abandoned: int, complaints: int) -> list[str]:
    signs = []
    if visits_before >= 2 and visits_recent < visits_before / 2 / 2:  # under half the earlier monthly rate
        signs.append("VISITS_FALLING")
    if abandoned >= 2:
        signs.append("ABANDONED_CHECKOUTS")
    if complaints >= 1:
        signs.append("AFTER_SALES_COMPLAINTS")
    return signs


async def score_all(model: ChurnModel | None, now: datetime | None = None) -> int:
    """Every buyer's score under ``model`` (``PRIOR`` if None); how many were scored."""
    now = now or datetime.now(UTC)
    params = bgnbd.BgNbd(model.r, model.alpha, model.a, model.b) if model is not None else PRIOR
    spend = (bgnbd.GammaGamma(model.p, model.q, model.gamma)
             if model is not None and model.p is not None and model.q is not None and model.gamma is not None else None)
    purchases = await rfm.purchases()
    days = evaluation.buyer_days((k, when, total) for k, rows in purchases.items() for when, total in rows)
    summary = evaluation.summarise(days, now.date())
    horizon = HORIZON_DAYS / evaluation.WEEK_DAYS
    rows: list[ChurnScore] = []
    if summary.keys:
        alive = bgnbd.p_alive(params, summary.x, summary.t_x, summary.T)
        expected = bgnbd.expected_purchases(params, horizon, summary.x, summary.t_x, summary.T)
        p_buy = bgnbd.p_buy_again(params, horizon, summary.x, summary.t_x, summary.T)
        order_mean = np.array([float(sum(t for _, t in purchases[int(k)])) / len(purchases[int(k)]) for k in summary.keys])
        per_purchase = bgnbd.expected_spend(spend, summary.x, summary.mean_spend) if spend is not None else order_mean
        signs = await warning_signs(now)
        for i, key in enumerate(summary.keys):
            user_id = int(key)  # type: ignore[call-overload]
            counts = {name: signs[name].get(user_id, 0) for name in signs}
            found = signs_of(counts["visits_recent"], counts["visits_before"], counts["abandoned"], counts["complaints"])
            rows.append(ChurnScore(
                user_id=user_id, p_alive=float(alive[i]), expected_purchases_90d=float(expected[i]),
                expected_spend_90d=Decimal(str(round(float(expected[i] * per_purchase[i]), 2))),
                visits_recent=counts["visits_recent"], visits_before=counts["visits_before"],
                abandoned_checkouts=counts["abandoned"], complaints=counts["complaints"], signs=",".join(found),
                band=band_with(base_band(1.0 - float(p_buy[i])), found),
                model_id=model.id if model is not None else None, scored_at=now,
            ))
    # The whole set replaced in one transaction: a campaign choosing buyers by band meanwhile
    # reads the last run's scores or this one's, never a mix, and a run that fails leaves the
    # last one whole. Buyers no longer profiled (personalisation off, account deleted) are
    # simply not in the new set, nor are those erased since they were read (profiling.writing).
    # On PostgreSQL a second run waits for this one (EXCLUSIVE lets plain reads through); SQLite
    # has one writer anyway.
    async with in_transaction() as connection:
        await profiling.writing()
        if connection.capabilities.dialect == "postgres":
            await connection.execute_script(f'LOCK TABLE "{ChurnScore._meta.db_table}" IN EXCLUSIVE MODE')
        keep = await profiling.profiled(row.user_id for row in rows)
        rows = [row for row in rows if row.user_id in keep]
        await ChurnScore.all().delete()
        await ChurnScore.bulk_create(rows, batch_size=500)
    return len(rows)


async def fit_and_score() -> int:
    """The job and the sweep: refit, then score every buyer."""
    now = datetime.now(UTC)
    return await score_all(await fit(now), now)


# -- reading -----------------------------------------------------------------------------


async def score_of(user_id: int) -> ChurnScore | None:
    return await ChurnScore.filter(user_id=user_id).first()


async def risk_band(user_id: int) -> RiskBand | None:
    """A buyer's band as last scored (for campaigns and other use cases); None if unscored."""
    row = await score_of(user_id)
    return row.band if row is not None else None


async def score_for_staff(actor: Actor, user_id: int) -> ChurnScore | None:
    if not allowed(actor, Action.READ_LIFECYCLE):
        return None
    return await score_of(user_id)
