"""Buyers summarised for the repeat-buying model, and its evaluation on a calibration and a
holdout period (``kameng churn evaluate``). Pure: purchases in, figures out.

Time is counted in periods (a week by default, Monday to Sunday, or a day): one purchase is
one buyer-period, so several lines on one day (CDNOW's log, an order of several products), or
in one week, count once with their amounts summed. The calibration and holdout periods are
split by date first, then each side is counted in periods.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np

from resolvers.lifecycle import bgnbd

WEEK_DAYS = 7.0
PERIODS = {"week": 7, "day": 1}


@dataclass(frozen=True)
class Summary:
    """Per buyer (same order in every array): repeat purchases, recency and age in weeks,
    mean spend of the repeat purchases (0 without one)."""

    keys: list[object]
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    mean_spend: np.ndarray


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def period_of(day: date, period: str = "week") -> date:
    """The first day of the period ``day`` falls in (weeks start on Monday)."""
    return day - timedelta(days=day.weekday()) if PERIODS[period] == 7 else day


def buyer_days(purchases: Iterable[tuple[object, date | datetime, float | Decimal]]) -> dict[object, dict[date, float]]:
    """{buyer: {day: amount}}: the purchases, one per buyer-day."""
    days: dict[object, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for key, when, amount in purchases:
        days[key][_day(when)] += float(amount)
    return days


def summarise(days: dict[object, dict[date, float]], end: date, period: str = "week") -> Summary:
    """The buyers who bought on or before ``end``, as the model sees them at ``end``: purchases
    counted in buyer-periods, times measured exactly (days, in weeks) from the first purchase.

    Exact times rather than whole periods: on CDNOW (calibration to 1997-09-30) the holdout
    forecast moves from -10.5% to -8.0% of the actual and the AUC from 0.7674 to 0.7677."""
    keys: list[object] = []
    x, t_x, T, spend = [], [], [], []
    for key, by_day in days.items():
        seen = sorted(day for day in by_day if day <= end)
        if not seen:
            continue
        by_period: dict[date, float] = defaultdict(float)
        for day in seen:
            by_period[period_of(day, period)] += by_day[day]
        repeats = [by_period[p] for p in sorted(by_period)[1:]]
        keys.append(key)
        x.append(len(repeats))
        t_x.append((seen[-1] - seen[0]).days / WEEK_DAYS)
        T.append((end - seen[0]).days / WEEK_DAYS)
        spend.append(sum(repeats) / len(repeats) if repeats else 0.0)
    return Summary(keys, np.array(x, float), np.array(t_x, float), np.array(T, float), np.array(spend, float))


@dataclass(frozen=True)
class Evaluation:
    buyers: int
    params: bgnbd.BgNbd
    holdout_actual: int
    holdout_forecast: float
    auc: float
    auc_recency: float
    auc_p_buy: float

    def as_json(self) -> dict[str, float | int]:
        return {"holdout_actual": self.holdout_actual, "holdout_forecast": round(self.holdout_forecast, 1),
                "auc": round(self.auc, 4), "auc_recency": round(self.auc_recency, 4)}


def evaluate(purchases: Iterable[tuple[object, date | datetime, float | Decimal]],
             calibration_end: date, holdout_end: date, *, period: str = "week") -> Evaluation:
    """Fit on purchases up to ``calibration_end``; compare with ``(calibration_end, holdout_end]``.

    The forecast is the sum of each calibration buyer's expected purchases over the holdout;
    the AUC ranks those buyers by their expected holdout purchases against whether they bought
    in it (``auc_p_buy`` ranks by the probability of at least one purchase instead, a little
    worse on CDNOW) and, as the baseline, by recency alone (the time of the last purchase).
    """
    if holdout_end <= calibration_end:
        raise ValueError("the holdout must end after the calibration")
    days = buyer_days(purchases)
    summary = summarise(days, calibration_end, period)
    if len(summary.keys) == 0:
        raise ValueError("no purchases in the calibration period")
    actual = np.array([len({period_of(d, period) for d in days[k] if calibration_end < d <= holdout_end})
                       for k in summary.keys], float)
    params = bgnbd.fit_bgnbd(summary.x, summary.t_x, summary.T)
    horizon = (holdout_end - calibration_end).days / WEEK_DAYS
    expected = bgnbd.expected_purchases(params, horizon, summary.x, summary.t_x, summary.T)
    p_buy = bgnbd.p_buy_again(params, horizon, summary.x, summary.t_x, summary.T)
    bought = actual > 0
    recency = summary.t_x - summary.T  # weeks since the last purchase, negated: recent ranks high
    return Evaluation(
        buyers=len(summary.keys), params=params, holdout_actual=int(actual.sum()),
        holdout_forecast=float(expected.sum()), auc=bgnbd.auc(expected, bought),
        auc_recency=bgnbd.auc(recency, bought), auc_p_buy=bgnbd.auc(p_buy, bought),
    )
