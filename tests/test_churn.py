"""Churn risk (issue 12, item 2): the BG/NBD and Gamma-Gamma fits recover known parameters
from data drawn from the models, `kameng churn evaluate` meets the targets on the real CDNOW
log (fetched from PyPI inside the `lifetimes` wheel, never imported) and reads CSV, and the
fit_churn job scores buyers from their orders, visits, abandoned checkouts and refunds."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from models.commerce.orders import Order, OrderStatus
from models.discovery.events import EventKind
from models.lifecycle.churn import ChurnModel, ChurnScore, RiskBand
from resolvers.commerce.orders import new_order_no
from resolvers.discovery.tracking import TrackedEvent, record
from resolvers.lifecycle import bgnbd, churn, rfm
from subscriptions import jobs, outbox
from tests.conftest import eventually
from tests.factories import make_product, make_users, token_for
from tests.test_delivery import gid
from tests.test_segments import LIFECYCLE, staff

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "cdnow"
WHEEL = "lifetimes==0.11.3"
MEMBER = "lifetimes/datasets/CDNOW_master.txt"


# -- parameter recovery ---------------------------------------------------------------------


def test_bgnbd_recovers_known_parameters_from_generated_buyers() -> None:
    true = bgnbd.BgNbd(r=0.5, alpha=5.0, a=0.8, b=2.5)
    rng = np.random.default_rng(12)
    x, t_x, T = bgnbd.simulate(true, rng.uniform(30, 80, size=6000), rng)
    fit = bgnbd.fit_bgnbd(x, t_x, T)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(getattr(true, name), rel=0.15), (name, fit)
    # The fitted model predicts what the true one does.
    assert bgnbd.expected_purchases(fit, 26, x, t_x, T).sum() == pytest.approx(
        bgnbd.expected_purchases(true, 26, x, t_x, T).sum(), rel=0.05)
    # Someone who bought often and recently is likelier alive than someone silent since.
    alive = bgnbd.p_alive(fit, [5, 5, 0], [50, 10, 0], [52, 52, 52])
    assert alive[0] > 0.8 > 0.2 > alive[1] and alive[2] == 1.0


def test_gamma_gamma_recovers_the_mean_spend() -> None:
    true = bgnbd.GammaGamma(p=6.0, q=4.0, gamma=15.0)
    rng = np.random.default_rng(3)
    x = rng.integers(1, 12, size=5000).astype(float)
    nu = rng.gamma(true.q, 1 / true.gamma, size=len(x))
    mean_spend = np.array([rng.gamma(true.p, 1 / n, size=int(k)).mean() for n, k in zip(nu, x, strict=True)])
    fit = bgnbd.fit_gamma_gamma(x, mean_spend)
    # p and gamma trade off against each other; the population mean spend p*gamma/(q-1) does not.
    assert fit.p * fit.gamma / (fit.q - 1) == pytest.approx(true.p * true.gamma / (true.q - 1), rel=0.05)
    for name in ("p", "q", "gamma"):
        assert getattr(fit, name) == pytest.approx(getattr(true, name), rel=0.3), (name, fit)


# -- the evaluation command ------------------------------------------------------------------


def _pip() -> list[list[str]]:
    return [[sys.executable, "-m", "pip"], ["python3", "-m", "pip"], ["uvx", "pip"]]


@pytest.fixture(scope="session")
def cdnow() -> Path:
    """The CDNOW master log, from the lifetimes wheel on PyPI (downloaded once into the
    gitignored .cache/, read from the zip; the package is never installed nor imported)."""
    target = CACHE / "CDNOW_master.txt"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = list(CACHE.glob("[Ll]ifetimes-0.11.3-*.whl"))
    for pip in _pip():
        if wheels:
            break
        try:
            subprocess.run([*pip, "download", "--no-deps", WHEEL, "-d", str(CACHE)], check=True, capture_output=True,
                           timeout=300)
        except (OSError, subprocess.SubprocessError):
            continue
        wheels = list(CACHE.glob("[Ll]ifetimes-0.11.3-*.whl"))
    assert wheels, f"could not download {WHEEL} from PyPI into {CACHE}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        target.write_bytes(wheel.read(MEMBER))
    return target


def evaluate(path: Path, fmt: str, calibration_end: str, holdout_end: str) -> tuple[str, dict[str, float]]:
    done = subprocess.run(
        [sys.executable, "-m", "service", "churn", "evaluate", str(path), "--format", fmt,
         "--calibration-end", calibration_end, "--holdout-end", holdout_end, "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "KAMENG_LOG_LEVEL": "WARNING"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(done.stdout.strip().splitlines()[-1])


def test_churn_evaluate_on_cdnow_meets_the_targets(cdnow: Path) -> None:
    output, figures = evaluate(cdnow, "cdnow", "1997-09-30", "1998-06-30")
    assert set(figures) == {"holdout_actual", "holdout_forecast", "auc", "auc_recency"}
    assert figures["holdout_actual"] == 18440  # repeat buyer-weeks in the holdout
    assert abs(figures["holdout_forecast"] - 18440) / 18440 <= 0.10, figures
    assert figures["auc"] >= 0.767 and figures["auc"] > figures["auc_recency"], figures
    assert "buyers in calibration: 23570" in output


def test_churn_evaluate_reads_csv(tmp_path: Path) -> None:
    true = bgnbd.BgNbd(r=0.6, alpha=4.0, a=0.7, b=2.5)
    rng = np.random.default_rng(7)
    start = date(2025, 1, 1)
    path = tmp_path / "orders.csv"
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["order", "user", "time", "amount"])
        for user in range(1500):
            first = start + timedelta(days=int(rng.integers(0, 60)))
            x, t_x, _ = bgnbd.simulate(true, [100.0], rng)
            times = [0.0, *sorted(rng.uniform(0, t_x[0], size=int(x[0]) - 1)), t_x[0]] if x[0] else [0.0]
            for week in times[: int(x[0]) + 1]:
                when = datetime.combine(first, datetime.min.time(), UTC) + timedelta(weeks=float(week))
                out.writerow([uuid.uuid4().hex[:8], f"u{user}", when.isoformat(), f"{rng.uniform(5, 50):.2f}"])
    _, figures = evaluate(path, "csv", "2025-09-30", "2026-03-31")
    assert figures["holdout_actual"] > 0 and figures["holdout_forecast"] > 0
    assert 0.5 < figures["auc"] <= 1


# -- the job ---------------------------------------------------------------------------------


async def orders_for(user_id: int, product, days_ago: list[float], *, status: OrderStatus = OrderStatus.COMPLETED,  # type: ignore[no-untyped-def]
                     paid: bool = True) -> None:
    now = datetime.now(UTC)
    await Order.bulk_create([
        Order(order_no=new_order_no(), buyer_id=user_id, product_id=product.id, merchant_id=product.merchant_id,
              quantity=1, unit_price=Decimal("30.00"), total=Decimal("30.00"), idempotency_scope=f"u:{user_id}",
              idempotency_key=uuid.uuid4().hex, expires_at=now, status=status,
              paid_at=now - timedelta(days=d) if paid else None)
        for d in days_ago
    ])


async def visits(user_id: int, days_ago: list[float]) -> None:
    now = datetime.now(UTC)
    await record([TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.PAGE_VISIT, user_id=user_id,
                               occurred_at=now - timedelta(days=d)) for d in days_ago])


async def test_the_job_fits_the_model_and_bands_buyers_with_their_warning_signs(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    rng = np.random.default_rng(5)
    crowd = await make_users(60)
    for user in crowd:  # a population drawn from a BG/NBD, for the fit
        age_weeks = float(rng.uniform(15, 60))
        x, t_x, _ = bgnbd.simulate(bgnbd.BgNbd(0.8, 3.0, 0.6, 3.0), [age_weeks], rng)
        weeks = [0.0, *rng.uniform(0, t_x[0], size=max(0, int(x[0]) - 1)), t_x[0]][: int(x[0]) + 1]
        await orders_for(user.id, product, [7 * (age_weeks - w) for w in weeks])
    steady, slipping, gone = await make_users(3)
    weekly = [float(d) for d in range(3, 180, 7)]
    await orders_for(steady.id, product, weekly)
    await visits(steady.id, [1, 5, 12, 20, 40, 50, 70])
    # The same purchases, but fewer visits, two abandoned checkouts and a refund.
    await orders_for(slipping.id, product, weekly)
    await visits(slipping.id, [35, 40, 45, 50, 55, 60, 70, 80])
    await orders_for(slipping.id, product, [2, 4], status=OrderStatus.CANCELLED, paid=False)
    await orders_for(slipping.id, product, [10], status=OrderStatus.REFUNDED)
    await orders_for(gone.id, product, [300])

    started = datetime.now(UTC)
    async with outbox.atomic():
        await outbox.enqueue(jobs.fit_churn())

    async def scored() -> bool:
        rows = await ChurnScore.filter(user_id__in=[steady.id, slipping.id, gone.id], scored_at__gte=started)
        return len(rows) == 3

    await eventually(scored, timeout=30)
    model = await ChurnModel.all().order_by("-id").first()
    assert model is not None and model.buyers >= 63 and model.fitted_at >= started

    high = await ChurnScore.get(user_id=steady.id)
    assert high.band == RiskBand.LOW and high.signs == "" and high.p_alive > 0.9
    assert high.expected_purchases_90d > 5 and high.expected_spend_90d > 0
    low = await ChurnScore.get(user_id=slipping.id)
    assert low.signs.split(",") == ["VISITS_FALLING", "ABANDONED_CHECKOUTS", "AFTER_SALES_COMPLAINTS"]
    assert (low.abandoned_checkouts, low.complaints, low.visits_recent) == (2, 1, 0)
    assert low.band == RiskBand.HIGH
    assert await churn.risk_band(gone.id) == RiskBand.HIGH  # one purchase, ten months ago

    # Staff see the figures with the buyer's RFM; the buyer does not.
    await rfm.recompute_user(slipping.id)
    query = LIFECYCLE.replace("segment { key name benefits }", "risk { band pAlive signs expectedSpend90d }")
    seen = (await (await staff(make_client)).gql(query, {"id": gid("User", slipping.id)}))["buyerLifecycle"]
    assert seen["frequency"] == len(weekly) and seen["risk"]["band"] == "HIGH"
    assert seen["risk"]["signs"] == ["VISITS_FALLING", "ABANDONED_CHECKOUTS", "AFTER_SALES_COMPLAINTS"]
    buyer = make_client()
    buyer.token = await token_for(slipping)
    assert (await buyer.gql(query, {"id": gid("User", slipping.id)}))["buyerLifecycle"] is None


async def test_tickets_and_claims_are_after_sales_complaints_once_per_order() -> None:
    from models.trust.claims import Claim, ClaimReason, ClaimStatus
    from models.trust.tickets import Ticket, TicketReason

    product = await make_product()
    weekly = [float(d) for d in range(3, 120, 7)]
    ticketed, claimed, both, quiet = await make_users(4)
    for user in (ticketed, claimed, both, quiet):
        await orders_for(user.id, product, weekly)
    now = datetime.now(UTC)

    async def last_orders(user_id: int, n: int) -> list[Order]:
        return list(await Order.filter(buyer_id=user_id).order_by("-id").limit(n))

    def ticket(order: Order) -> Ticket:
        return Ticket(order_id=order.id, buyer_id=order.buyer_id, merchant_id=order.merchant_id,
                      reason=TicketReason.KEY_INVALID, first_response_due_at=now, resolution_due_at=now, due_at=now)

    def claim(order: Order, ticket_id: int | None = None) -> Claim:
        return Claim(order_id=order.id, subject="NOT_RECEIVED", buyer_id=order.buyer_id, merchant_id=order.merchant_id,
                     reason=ClaimReason.NOT_RECEIVED, status=ClaimStatus.REJECTED, ticket_id=ticket_id)

    await ticket((await last_orders(ticketed.id, 1))[0]).save()
    await claim((await last_orders(claimed.id, 1))[0]).save()
    # One order with a ticket and the claim it became, another with a claim only: two complaints.
    first, second = await last_orders(both.id, 2)
    opened = ticket(first)
    await opened.save()
    await claim(first, opened.id).save()
    await claim(second).save()

    found = await churn.complaints(now - timedelta(days=churn.HORIZON_DAYS))
    assert (found.get(ticketed.id), found.get(claimed.id), found.get(both.id), found.get(quiet.id)) == (1, 1, 2, None)
    signs = await churn.warning_signs(now)
    assert signs["complaints"].get(both.id) == 2

    await churn.score_all(None, now)
    scores = {s.user_id: s for s in await ChurnScore.filter(user_id__in=[ticketed.id, claimed.id, both.id, quiet.id])}
    for user in (ticketed, claimed, both):
        assert "AFTER_SALES_COMPLAINTS" in scores[user.id].signs.split(","), scores[user.id].signs
    assert "AFTER_SALES_COMPLAINTS" not in scores[quiet.id].signs.split(",")
    assert scores[both.id].complaints == 2
    # The sign moves the band one step up from what the same purchases give without it.
    assert churn.BANDS.index(scores[ticketed.id].band) == min(2, churn.BANDS.index(scores[quiet.id].band) + 1)


async def test_a_scoring_run_replaces_every_score_at_once_or_leaves_them_all(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    buyers = await make_users(3)
    for n, user in enumerate(buyers):
        await orders_for(user.id, product, [float(d) for d in range(3 + n, 120, 7 + n)])
    ids = [user.id for user in buyers]
    first = datetime.now(UTC) - timedelta(hours=1)
    assert await churn.score_all(None, first) >= 3
    before = {s.user_id: (s.scored_at, s.band) for s in await ChurnScore.filter(user_id__in=ids)}
    assert len(before) == 3

    # A run that fails while writing (here after its first row) changes no score at all.
    real = ChurnScore.bulk_create

    async def one_then_fail(rows, **kwargs):  # type: ignore[no-untyped-def]
        await real(list(rows)[:1], **kwargs)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ChurnScore, "bulk_create", one_then_fail)
    with pytest.raises(RuntimeError):
        await churn.score_all(None, datetime.now(UTC))
    after = {s.user_id: (s.scored_at, s.band) for s in await ChurnScore.filter(user_id__in=ids)}
    assert after == before
    monkeypatch.undo()

    # A run that succeeds replaces them all, and drops a buyer no longer profiled.
    await Order.filter(buyer_id=ids[0]).delete()
    later = datetime.now(UTC)
    await churn.score_all(None, later)
    now_scored = {s.user_id: s.scored_at for s in await ChurnScore.filter(user_id__in=ids)}
    assert set(now_scored) == set(ids[1:]) and all(at == later for at in now_scored.values())
