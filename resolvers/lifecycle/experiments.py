"""Feature flags and A/B experiments: definition, sticky assignment, exposures, results.

**Assignment** is GrowthBook's hashing (its "v2" hash, written out here rather than taking the
SDK for one function: ``fnv1a32(str(fnv1a32(key + unit)))`` mod 10,000, so the same unit
lands in the same bucket in every process, after every restart, in any GrowthBook client
given the same key), then the arm whose cumulative weight range holds the bucket. It is
**sticky**: the first assignment is stored as the unit's exposure and wins from then on, even
if staff change the weights; a user who signs in keeps the arm their device had.

**Exposure** is written once per unit and experiment (a unique key), when the client asks
(``experiment``/``assignments``) or a server feature reads it (``assign``).

**Results** per arm, from real orders and behaviour events after each unit's exposure:
exposures, conversions (a paid order), conversion rate with a 95% interval, revenue per
exposed user with a 95% interval, retention (any behaviour event a day or more after
exposure), the difference in conversion from the first (control) arm with its interval, and
a sample-ratio-mismatch check (chi-square of exposures against the weights). Intervals are
the normal approximation (neither scipy nor statsmodels is a dependency); the chi-square
p-value is exact for its degrees of freedom.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from statistics import NormalDist

from tortoise.exceptions import IntegrityError

from kameng.settings import get_settings

from models.commerce.orders import Order, OrderStatus
from models.discovery.events import BehaviourEvent
from models.lifecycle.experiments import Experiment, ExperimentExposure, ExperimentKind
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action, allowed, require
from resolvers.errors import invalid

#: Experiments the code relies on: created with these arms the first time they are read.
KNOWN: dict[str, tuple[str, list[dict[str, object]]]] = {
    "recommendations": ("Recommendations: the trained model against popularity (issue 11).",
                        [{"name": "popularity", "weight": 50}, {"name": "model", "weight": 50}]),
}
#: Orders that count as a conversion (paid, whatever happened after, except a refund).
_CONVERTED = (OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
SRM_ALPHA = 0.001
_Z = NormalDist().inv_cdf(0.975)


def fnv1a32(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def bucket(key: str, unit: str) -> float:
    """GrowthBook's v2 hash of ``unit`` under the seed ``key``: a number in [0, 1)."""
    return (fnv1a32(str(fnv1a32(key + unit))) % 10000) / 10000


def choose(arms: list[dict[str, object]], point: float) -> str:
    total = sum(float(a["weight"]) for a in arms)  # type: ignore[arg-type]
    edge = 0.0
    for arm in arms:
        edge += float(arm["weight"]) / total  # type: ignore[arg-type]
        if point < edge:
            return str(arm["name"])
    return str(arms[-1]["name"])


KEY_MAX = 64
DEVICE_MAX = 64


def check_device(device_id: str | None) -> None:
    if device_id is not None and not 1 <= len(device_id) <= DEVICE_MAX:
        raise invalid("deviceId", f"A device id has 1 to {DEVICE_MAX} characters.")


async def get_experiment(key: str) -> Experiment | None:
    if not 1 <= len(key) <= KEY_MAX:  # no experiment has such a key (nor could the column hold it)
        return None
    found = await Experiment.filter(key=key).first()
    if found is None and key in KNOWN:
        description, arms = KNOWN[key]
        try:
            found = await Experiment.create(key=key, description=description, arms=arms)
        except IntegrityError:
            found = await Experiment.get(key=key)
    return found


#: Definitions the serving path reads (``cached_experiment``): key -> (read at, experiment or None).
_CACHE: dict[str, tuple[float, Experiment | None]] = {}


async def cached_experiment(key: str) -> Experiment | None:
    """``get_experiment`` without a query on most calls: this process keeps each definition for
    ``KAMENG_EXPERIMENT_CACHE_SECONDS`` and drops it at once when it defines the experiment
    itself (other processes see a change within the TTL). Read-only for callers."""
    now = time.monotonic()
    found = _CACHE.get(key)
    if found is not None and now - found[0] < get_settings().experiment_cache_seconds:
        return found[1]
    experiment = await get_experiment(key)
    _CACHE[key] = (now, experiment)
    return experiment


def forget(key: str | None = None) -> None:
    """Drop one cached definition (all with None)."""
    if key is None:
        _CACHE.clear()
    else:
        _CACHE.pop(key, None)


async def assign(key: str, user_id: int | None, device_id: str | None) -> str:
    """The arm of the unit (the user, else the device) in experiment ``key``, logged as an
    exposure the first time. An unknown or disabled experiment answers its first arm
    (the control; "off" for a flag) and logs nothing."""
    check_device(device_id)
    experiment = await get_experiment(key)
    if experiment is None or not experiment.arms:
        return "control"
    control = str(experiment.arms[0]["name"])
    if not experiment.enabled or (user_id is None and not device_id):
        return control
    units = ([f"user:{user_id}"] if user_id is not None else []) + ([f"device:{device_id}"] if device_id else [])
    seen = {e.unit: e for e in await ExperimentExposure.filter(experiment_id=experiment.id, unit__in=units)}
    if units[0] in seen:
        return seen[units[0]].arm
    # A user inherits the arm their device had before sign-in; otherwise the hash decides.
    earlier = seen.get(units[-1])
    arm = earlier.arm if earlier is not None else choose(experiment.arms, bucket(experiment.key, units[0]))
    try:
        await ExperimentExposure.create(experiment_id=experiment.id, unit=units[0], user_id=user_id,
                                        device_id=device_id, arm=arm, exposed_at=datetime.now(UTC))
    except IntegrityError:  # a concurrent first exposure: it decided
        return (await ExperimentExposure.get(experiment_id=experiment.id, unit=units[0])).arm
    if earlier is not None and earlier.user_id is None and user_id is not None:
        await ExperimentExposure.filter(id=earlier.id).update(user_id=user_id)
    return arm


async def assignments(actor: Actor, device_id: str | None) -> list[tuple[Experiment, str]]:
    """Every enabled flag and experiment with the caller's arm (each an exposure)."""
    check_device(device_id)
    for key in KNOWN:
        await get_experiment(key)
    found = await Experiment.filter(enabled=True).order_by("key")
    return [(e, await assign(e.key, actor.user_id, device_id)) for e in found]


@dataclass(frozen=True)
class NewExperiment:
    key: str
    description: str
    kind: ExperimentKind
    arms: list[tuple[str, float]]
    enabled: bool = True


async def define(actor: Actor, new: NewExperiment) -> Experiment:
    """Create or change a flag or experiment (ADMIN). Changing weights moves only units not
    yet exposed: exposures are sticky."""
    require(actor, Action.MANAGE_EXPERIMENTS)
    key = new.key.strip()
    if not key or len(key) > KEY_MAX or not all(c.isalnum() or c in "-_." for c in key):
        raise invalid("key", "A key is 1 to 64 letters, digits, '-', '_' or '.'.")
    arms = new.arms if new.kind == ExperimentKind.EXPERIMENT or new.arms else []
    if new.kind == ExperimentKind.FLAG and not arms:
        arms = [("off", 0.0), ("on", 100.0)]
    names = [name.strip() for name, _ in arms]
    if len(arms) < 2 or len(set(names)) != len(names) or any(not n or len(n) > 32 for n in names):
        raise invalid("arms", "Give at least two arms with distinct names of 1 to 32 characters.")
    if any(not math.isfinite(w) or w < 0 for _, w in arms) or sum(w for _, w in arms) <= 0:
        raise invalid("arms", "Weights are non-negative and not all zero.")
    stored = [{"name": n, "weight": w} for n, (_, w) in zip(names, arms, strict=True)]
    forget(key)
    experiment = await Experiment.filter(key=key).first()
    if experiment is None:
        return await Experiment.create(key=key, kind=new.kind, description=new.description[:300], arms=stored,
                                       enabled=new.enabled)
    experiment.kind, experiment.description, experiment.arms, experiment.enabled = (
        new.kind, new.description[:300], stored, new.enabled)
    await experiment.save()
    forget(key)
    return experiment


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmResult:
    arm: str
    weight: float
    exposures: int
    conversions: int
    conversion_rate: float
    conversion_low: float
    conversion_high: float
    revenue: Decimal
    revenue_per_user: float
    revenue_low: float
    revenue_high: float
    retained: int
    retention_rate: float
    lift: float  # conversion rate minus the control's
    lift_low: float
    lift_high: float


@dataclass(frozen=True)
class Results:
    experiment: Experiment
    arms: list[ArmResult]
    srm_chi_square: float
    srm_p_value: float
    sample_ratio_mismatch: bool


async def results(actor: Actor, key: str) -> Results | None:
    """Staff only: None for anyone else, and for a key no experiment has."""
    if not allowed(actor, Action.READ_EXPERIMENT_RESULTS):
        return None
    experiment = await get_experiment(key)
    if experiment is None:
        return None
    exposures = await ExperimentExposure.filter(experiment_id=experiment.id).values("arm", "user_id", "exposed_at")
    user_ids = list({e["user_id"] for e in exposures if e["user_id"] is not None})
    orders = await Order.filter(buyer_id__in=user_ids, status__in=_CONVERTED, paid_at__not_isnull=True).values(
        "buyer_id", "total", "paid_at") if user_ids else []
    paid: dict[int, list[tuple[datetime, Decimal]]] = {}
    for order in orders:
        paid.setdefault(order["buyer_id"], []).append((order["paid_at"], Decimal(order["total"])))
    activity: dict[int, datetime] = {}
    if user_ids:
        for row in await BehaviourEvent.filter(user_id__in=user_ids).values("user_id", "occurred_at"):
            last = activity.get(row["user_id"])
            activity[row["user_id"]] = max(last, row["occurred_at"]) if last else row["occurred_at"]
    per_arm: dict[str, list[tuple[bool, float, bool]]] = {str(a["name"]): [] for a in experiment.arms}
    for e in exposures:
        uid, at = e["user_id"], e["exposed_at"]
        spent = [total for when, total in paid.get(uid, []) if when >= at] if uid is not None else []
        back = uid is not None and uid in activity and activity[uid] >= at + timedelta(days=1)
        per_arm.setdefault(e["arm"], []).append((bool(spent), float(sum(spent, Decimal(0))), back))
    weights = {str(a["name"]): float(a["weight"]) for a in experiment.arms}  # type: ignore[arg-type]
    control = str(experiment.arms[0]["name"]) if experiment.arms else ""
    control_rows = per_arm.get(control, [])
    arms = [_arm(name, weights.get(name, 0.0), rows, control_rows) for name, rows in per_arm.items()]
    chi, p = srm([a.exposures for a in arms], [a.weight for a in arms])
    return Results(experiment, arms, chi, p, p < SRM_ALPHA)


def _arm(name: str, weight: float, rows: list[tuple[bool, float, bool]],
         control: list[tuple[bool, float, bool]]) -> ArmResult:
    n = len(rows)
    conversions = sum(1 for c, _, _ in rows if c)
    rate = conversions / n if n else 0.0
    half = _Z * math.sqrt(rate * (1 - rate) / n) if n else 0.0
    revenue = [r for _, r, _ in rows]
    mean = sum(revenue) / n if n else 0.0
    sd = math.sqrt(sum((r - mean) ** 2 for r in revenue) / (n - 1)) if n > 1 else 0.0
    rev_half = _Z * sd / math.sqrt(n) if n else 0.0
    retained = sum(1 for _, _, b in rows if b)
    cn = len(control)
    c_rate = sum(1 for c, _, _ in control if c) / cn if cn else 0.0
    lift = rate - c_rate
    lift_half = _Z * math.sqrt((rate * (1 - rate) / n if n else 0) + (c_rate * (1 - c_rate) / cn if cn else 0))
    return ArmResult(
        arm=name, weight=weight, exposures=n, conversions=conversions, conversion_rate=rate,
        conversion_low=max(0.0, rate - half), conversion_high=min(1.0, rate + half),
        revenue=Decimal(str(sum(revenue))).quantize(Decimal("0.01")), revenue_per_user=mean, revenue_low=mean - rev_half,
        revenue_high=mean + rev_half, retained=retained, retention_rate=retained / n if n else 0.0,
        lift=lift, lift_low=lift - lift_half, lift_high=lift + lift_half,
    )


def srm(observed: list[int], weights: list[float]) -> tuple[float, float]:
    """Pearson's chi-square of ``observed`` counts against the ``weights``, and its p-value."""
    pairs = [(o, w) for o, w in zip(observed, weights, strict=True) if w > 0]
    total, weight_sum = sum(o for o, _ in pairs), sum(w for _, w in pairs)
    if total == 0 or len(pairs) < 2:
        return 0.0, 1.0
    chi = sum((o - total * w / weight_sum) ** 2 / (total * w / weight_sum) for o, w in pairs)
    return chi, chi_square_sf(chi, len(pairs) - 1)


def chi_square_sf(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom (closed forms)."""
    if x <= 0:
        return 1.0
    if dof % 2 == 0:
        term = total = math.exp(-x / 2)
        for k in range(1, dof // 2):
            term *= x / (2 * k)
            total += term
        return min(1.0, total)
    total = math.erfc(math.sqrt(x / 2))
    term = math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
    for k in range(1, (dof + 1) // 2):
        total += term
        term *= x / (2 * k + 1)
    return min(1.0, total)
