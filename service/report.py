"""`kameng report --out DIR`: the retention analytics as tables (CSV, JSON) and charts (PNG, SVG).

The report is a list of sections (``SECTIONS``); each turns the computed metrics
(`resolvers.lifecycle.analytics.Retention`) into rows and, for most, a chart. The staff
dashboard (/dashboard) draws its charts with the same functions, as SVG.

Charts use matplotlib's object API on the Agg/SVG canvases: no display, no pyplot state, so a
chart can be drawn in a worker thread while the server runs. Suppressed cells (fewer than 5
users) are drawn as gaps and labelled, never as zero.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "kameng"  # stable SVG ids
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in SVG: smaller, searchable, selectable

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from resolvers.lifecycle.analytics import MIN_GROUP, Measure, Retention  # noqa: E402

Rows = list[dict[str, Any]]
SUPPRESSED = "suppressed (< 5 users)"


@dataclass(frozen=True)
class Section:
    name: str  # file stem and dashboard id
    title: str
    rows: Callable[[Retention], Rows]
    chart: Callable[[Retention], Figure] | None = None


def _value(m: Measure) -> float | None:
    return m.value


def _nan(value: float | Decimal | None) -> float:
    return math.nan if value is None else float(value)


def _figure(title: str, width: float = 7.5, height: float = 4.2) -> tuple[Figure, Any]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def _empty(axes: Any, what: str) -> None:
    axes.text(0.5, 0.5, f"no {what} in the period (or all {SUPPRESSED})", ha="center", va="center",
              transform=axes.transAxes, color="#666")
    axes.set_xticks([])
    axes.set_yticks([])


# -- rows -----------------------------------------------------------------------------------

def summary_rows(r: Retention) -> Rows:
    names = ("buyers", "repurchase_rate", "single_purchase_share", "mean_days_between_purchases",
             "cross_category_rate", "unprompted_return_share", "visits_per_user_per_month", "nps")
    return [{"metric": n, **asdict(getattr(r, n))} for n in names]


def cohort_rows(r: Retention) -> Rows:
    rows: Rows = []
    for c in r.cohorts:
        for k, (share, ltv) in enumerate(zip(c.retention, c.ltv, strict=True)):
            rows.append({"cohort": c.month, "size": c.size, "suppressed": c.suppressed, "age_months": k,
                         "retention": share, "ltv": None if ltv is None else str(ltv)})
    return rows


def curve_rows(r: Retention) -> Rows:
    return [{"age_months": k, "retention": ret.value, "ltv": ltv.value, "users": ret.users, "suppressed": ret.suppressed}
            for k, (ret, ltv) in enumerate(zip(r.retention_curve, r.ltv_curve, strict=True))]


def visit_rows(r: Retention) -> Rows:
    return [{"month": v.month, **asdict(v.visits_per_user)} for v in r.monthly_visits]


# -- charts ---------------------------------------------------------------------------------

def cohort_heatmap(r: Retention) -> Figure:
    figure, axes = _figure("Monthly cohort retention (share buying again in month k)", 8, 0.6 + 0.45 * max(3, len(r.cohorts)))
    if not r.cohorts:
        _empty(axes, "cohorts")
        return figure
    ages = max(len(c.retention) for c in r.cohorts)
    grid = [[_nan(c.retention[k]) if k < len(c.retention) else math.nan for k in range(ages)] for c in r.cohorts]
    image = axes.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    axes.set_xticks(range(ages), [str(k) for k in range(ages)])
    axes.set_yticks(range(len(r.cohorts)), [c.month + (" *" if c.suppressed else f" (n={c.size})") for c in r.cohorts])
    axes.set_xlabel("months since first purchase (k)")
    for i, row in enumerate(grid):
        for k, share in enumerate(row):
            if not math.isnan(share):
                axes.text(k, i, f"{share:.0%}", ha="center", va="center", fontsize=7,
                          color="white" if share < 0.6 else "black")
    figure.colorbar(image, ax=axes, label="retention")
    if any(c.suppressed for c in r.cohorts):
        axes.annotate(f"* {SUPPRESSED}", (0.01, 0.01), xycoords="figure fraction", fontsize=7, color="#666")
    return figure


def retention_curves(r: Retention) -> Figure:
    figure, axes = _figure("Retention curves by cohort")
    shown = [c for c in r.cohorts if not c.suppressed]
    for c in shown:
        axes.plot(range(len(c.retention)), [_nan(s) for s in c.retention], marker="o", linewidth=1, alpha=0.6,
                  label=c.month)
    pooled = [_nan(m.value) for m in r.retention_curve]
    if pooled and not all(math.isnan(v) for v in pooled):
        axes.plot(range(len(pooled)), pooled, color="black", linewidth=2.5, marker="s", label="all cohorts")
    if not shown and all(math.isnan(v) for v in pooled):
        _empty(axes, "cohorts")
        return figure
    axes.set_ylim(0, 1.05)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("months since first purchase (k)")
    axes.set_ylabel("share buying in month k")
    axes.legend(fontsize=7, ncols=2)
    return figure


def repurchase_chart(r: Retention) -> Figure:
    figure, axes = _figure("Repurchase and return (shares of users)")
    bars = [("repurchase rate", r.repurchase_rate), ("single purchase", r.single_purchase_share),
            ("cross-category", r.cross_category_rate), ("returned unprompted", r.unprompted_return_share)]
    heights = [_nan(m.value) for _, m in bars]
    drawn = axes.bar([n for n, _ in bars], [0 if math.isnan(h) else h for h in heights], color="#3b7dd8")
    for bar, (_, m) in zip(drawn, bars, strict=True):
        label = SUPPRESSED if m.suppressed else f"{m.value:.0%} of {m.users}"
        axes.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    axes.set_ylim(0, 1.1)
    gap = r.mean_days_between_purchases
    axes.set_xlabel("mean days between purchases: " + (SUPPRESSED if gap.suppressed else f"{gap.value:.1f}"))
    return figure


def visits_chart(r: Retention) -> Figure:
    figure, axes = _figure("Visits per visiting user, by month")
    if not r.monthly_visits:
        _empty(axes, "visits")
        return figure
    months = [v.month for v in r.monthly_visits]
    values = [_nan(v.visits_per_user.value) for v in r.monthly_visits]
    axes.bar(months, [0 if math.isnan(v) else v for v in values], color="#2a9d8f")
    for i, v in enumerate(values):
        axes.annotate(SUPPRESSED if math.isnan(v) else f"{v:.2f}", (i, 0 if math.isnan(v) else v), ha="center",
                      va="bottom", fontsize=7, rotation=90 if math.isnan(v) else 0)
    axes.set_ylabel("visit-days per user")
    axes.tick_params(axis="x", labelrotation=45)
    return figure


def ltv_chart(r: Retention) -> Figure:
    figure, axes = _figure("Lifetime value: revenue per buyer by cohort age (CNY)")
    values = [_nan(m.value) for m in r.ltv_curve]
    if not values or all(math.isnan(v) for v in values):
        _empty(axes, "cohorts")
        return figure
    axes.plot(range(len(values)), values, marker="o", color="#e76f51", linewidth=2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("months since first purchase (k)")
    axes.set_ylabel("cumulative revenue per buyer")
    axes.set_ylim(bottom=0)
    return figure


def _small(n: int | None) -> bool:
    return n is None or n < MIN_GROUP


def segment_size_rows(r: Retention) -> Rows:
    return [{"day": c.day.isoformat(), "segment": c.segment, "buyers": None if _small(c.buyers) else c.buyers,
             "suppressed": _small(c.buyers)} for c in r.segment_sizes]


def uplift_rows(r: Retention) -> Rows:
    rows: Rows = []
    for c in r.campaign_uplift:
        small = _small(c.treatment.users) or _small(c.control.users)
        for arm in (c.treatment, c.control):
            hidden = _small(arm.users)
            rows.append({
                "campaign_id": c.campaign_id, "campaign": c.name, "arm": arm.arm,
                "users": None if hidden else arm.users, "delivered": None if hidden else arm.delivered,
                "opened": None if hidden else arm.opened, "clicked": None if hidden else arm.clicked,
                "converted": None if hidden else arm.converted, "conversion_rate": None if hidden else arm.conversion_rate,
                "uplift": None if small or c.uplift is None else c.uplift.difference,
                "uplift_low": None if small or c.uplift is None else c.uplift.low,
                "uplift_high": None if small or c.uplift is None else c.uplift.high,
                "p_value": None if small or c.uplift is None else c.uplift.p_value, "suppressed": hidden,
            })
    return rows


def segment_sizes_chart(r: Retention) -> Figure:
    figure, axes = _figure("Segment sizes over time (buyers per segment, daily)")
    days = sorted({c.day for c in r.segment_sizes})
    names = sorted({c.segment for c in r.segment_sizes})
    counts = {(c.day, c.segment): c.buyers for c in r.segment_sizes if not _small(c.buyers)}
    if not counts:
        _empty(axes, "segment counts")
        return figure
    shown = [n for n in names if any((d, n) in counts for d in days)]
    axes.stackplot(days, [[counts.get((d, n), 0) for d in days] for n in shown], labels=shown, alpha=0.85)
    axes.set_ylabel("buyers")
    axes.tick_params(axis="x", labelrotation=45)
    axes.legend(fontsize=7, ncols=2, loc="upper left")
    if len(counts) < len(r.segment_sizes):
        axes.annotate(f"cells with {SUPPRESSED} left out", (0.01, 0.01), xycoords="figure fraction", fontsize=7,
                      color="#666")
    return figure


def uplift_chart(r: Retention) -> Figure:
    figure, axes = _figure("Campaign uplift: conversion, treatment minus control (95% interval)")
    shown = [c for c in r.campaign_uplift
             if c.uplift is not None and not _small(c.treatment.users) and not _small(c.control.users)]
    if not shown:
        _empty(axes, "campaign with both arms reported")
        return figure
    names = [f"{c.name[:32]} (#{c.campaign_id})" for c in shown]
    values = [c.uplift.difference for c in shown]  # type: ignore[union-attr]
    errors = [[v - c.uplift.low for v, c in zip(values, shown, strict=True)],  # type: ignore[union-attr]
              [c.uplift.high - v for v, c in zip(values, shown, strict=True)]]  # type: ignore[union-attr]
    axes.bar(names, values, yerr=errors, capsize=4, width=0.5,
             color=["#2a9d8f" if v >= 0 else "#e76f51" for v in values])
    for i, c in enumerate(shown):
        axes.annotate(f"{values[i]:+.1%} [{c.uplift.low:+.1%}, {c.uplift.high:+.1%}]"  # type: ignore[union-attr]
                      f"\nn={c.treatment.users} vs {c.control.users}", (i, 0), ha="center", va="bottom", fontsize=7)
    axes.set_xlim(-0.75, len(shown) - 0.25)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_ylabel("difference in conversion rate")
    axes.tick_params(axis="x", labelrotation=15 if len(shown) > 3 else 0)
    return figure


SECTIONS: list[Section] = [
    Section("summary", "Summary", summary_rows, repurchase_chart),
    Section("cohort_retention", "Cohort retention", cohort_rows, cohort_heatmap),
    Section("retention_curves", "Retention curves", curve_rows, retention_curves),
    Section("ltv", "Lifetime value", curve_rows, ltv_chart),
    Section("visits", "Visits per user per month", visit_rows, visits_chart),
    Section("segment_sizes", "Segment sizes over time", segment_size_rows, segment_sizes_chart),
    Section("campaign_uplift", "Campaign uplift", uplift_rows, uplift_chart),
]

CHARTS = {s.name: s for s in SECTIONS if s.chart is not None}


# -- output ---------------------------------------------------------------------------------

def _save(figure: Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    figure.savefig(buffer, format=fmt, dpi=110, metadata=metadata)
    return buffer.getvalue()


def svg(name: str, r: Retention) -> str:
    """One section's chart as SVG text (for the dashboard)."""
    chart = CHARTS[name].chart
    assert chart is not None
    return _save(chart(r), "svg").decode()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def write(r: Retention, out: Path) -> list[Path]:
    """Every section's table (CSV and JSON) and chart (PNG and SVG), and the whole report as
    report.json; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for section in SECTIONS:
        rows = section.rows(r)
        path = out / f"{section.name}.csv"
        with path.open("w", newline="") as handle:
            if rows:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows({k: "" if v is None else _plain_cell(v) for k, v in row.items()} for row in rows)
        written.append(path)
        path = out / f"{section.name}.json"
        path.write_text(json.dumps(rows, default=_plain, indent=1))
        written.append(path)
        if section.chart is not None:
            figure = section.chart(r)
            for fmt in ("png", "svg"):
                path = out / f"{section.name}.{fmt}"
                path.write_bytes(_save(figure, fmt))
                written.append(path)
    path = out / "report.json"
    path.write_text(json.dumps(asdict(r), default=_plain, indent=1))
    written.append(path)
    return written


def _plain_cell(value: Any) -> Any:
    return _plain(value) if isinstance(value, (Decimal, date)) else value
