"""Named segments: rules staff edit, the defaults from articles 003 and 004, which rule a
buyer falls in, and what a segment brings the buyer.

A rule bounds recency (days since the last purchase), frequency (completed orders), monetary
value (their total, ``monetary_max`` exclusive) and the lifecycle stage; a buyer is in the
first active rule, by ``priority`` then id, whose every set bound holds. Staff see a user's
segment (``READ_LIFECYCLE``); the user sees only its benefits. Rules are edited by ADMINs
(``MANAGE_SEGMENTS``); a rule is never deleted, only deactivated.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from tortoise.functions import Count

from models.lifecycle.segments import BuyerRfm, SegmentRule, SegmentSize, Stage
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action, allowed, require
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import jobs, outbox

#: The articles' examples, seeded once (by key): 003's two RFM groups, 004's three kinds of
#: lapsed buyer, and 003's lifecycle stages as the fallback.
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    dict(key="loyal-high-value", name="Loyal high-value", priority=10, recency_days_max=7, frequency_min=5,
         monetary_min=Decimal("200"), description="R <= 7 days, F >= 5, M >= 200 (article 003)",
         benefits="Dedicated customer service, birthday treats and early access to new products."),
    dict(key="lapsed-high-value", name="Lapsed high-value", priority=20, stage=Stage.LAPSED,
         monetary_min=Decimal("200"), description="Lapsed after large spending (article 004)",
         benefits="One-to-one care from our service team and a high-value welcome-back reward."),
    dict(key="lapsed-low-frequency", name="Lapsed low-frequency", priority=30, stage=Stage.LAPSED, frequency_min=2,
         description="Lapsed occasional buyer (article 004)",
         benefits="Limited-time discount packs and returning-customer prices."),
    dict(key="lapsed-new-customer", name="Lapsed new customer", priority=40, stage=Stage.LAPSED, frequency_max=1,
         description="Left after a first order (article 004)",
         benefits="A new-customer gift pack and a 30-second getting-started guide."),
    dict(key="new-low-value", name="New low-value", priority=50, recency_days_min=30, frequency_max=1,
         monetary_max=Decimal("50"), description="R >= 30 days, F = 1, M < 50 (article 003)",
         benefits="A small new-customer gift pack."),
    dict(key="new", name="New", priority=100, stage=Stage.NEW, description="First purchase, recently",
         benefits="Newcomer offers."),
    dict(key="active", name="Active", priority=110, stage=Stage.ACTIVE, description="Bought recently",
         benefits="Member prices."),
    dict(key="silent", name="Silent", priority=120, stage=Stage.SILENT, description="No purchase for 30 days",
         benefits="A personalised offer on what you like."),
    dict(key="lapsed", name="Lapsed", priority=130, stage=Stage.LAPSED, description="No purchase for 90 days",
         benefits="A welcome-back offer."),
)


async def ensure_default_rules() -> None:
    """Insert the default rules that were never inserted (a deactivated one stays off)."""
    existing = set(await SegmentRule.filter(key__in=[r["key"] for r in DEFAULT_RULES]).values_list("key", flat=True))
    missing = [SegmentRule(**rule) for rule in DEFAULT_RULES if rule["key"] not in existing]
    if missing:
        await SegmentRule.bulk_create(missing, ignore_conflicts=True)


async def active_rules() -> list[SegmentRule]:
    return list(await SegmentRule.filter(active=True).order_by("priority", "id"))


def matches(rule: SegmentRule, *, recency_days: int, frequency: int, monetary: Decimal, stage: Stage) -> bool:
    checks = (
        rule.stage is None or rule.stage == stage,
        rule.recency_days_min is None or recency_days >= rule.recency_days_min,
        rule.recency_days_max is None or recency_days <= rule.recency_days_max,
        rule.frequency_min is None or frequency >= rule.frequency_min,
        rule.frequency_max is None or frequency <= rule.frequency_max,
        rule.monetary_min is None or monetary >= rule.monetary_min,
        rule.monetary_max is None or monetary < rule.monetary_max,
    )
    return all(checks)


def first_match(rules: list[SegmentRule], **rfm: Any) -> SegmentRule | None:
    return next((rule for rule in rules if matches(rule, **rfm)), None)


# -- reading -----------------------------------------------------------------------------


async def segment_of(user_id: int) -> SegmentRule | None:
    """The segment a buyer is in as last computed (for campaigns and other use cases)."""
    row = await BuyerRfm.filter(user_id=user_id).first()
    if row is None or row.segment_rule_id is None:
        return None
    return await SegmentRule.filter(id=row.segment_rule_id).first()


async def rfm_of(user_id: int) -> BuyerRfm | None:
    return await BuyerRfm.filter(user_id=user_id).first()


async def rfm_for_staff(actor: Actor, user_id: int) -> BuyerRfm | None:
    """A user's RFM row for staff; None for anyone else (the user included)."""
    if not allowed(actor, Action.READ_LIFECYCLE):
        return None
    return await rfm_of(user_id)


async def benefits_for(actor: Actor, user_id: int) -> str | None:
    """What the user's segment brings them: to the user themself (and staff), else None."""
    if actor.user_id != user_id and not allowed(actor, Action.READ_LIFECYCLE):
        return None
    rule = await segment_of(user_id)
    return rule.benefits if rule is not None and rule.active and rule.benefits else None


async def list_rules(actor: Actor, *, include_inactive: bool = True) -> list[SegmentRule]:
    """Every rule, by priority, for staff; nothing for anyone else."""
    if not allowed(actor, Action.READ_LIFECYCLE):
        return []
    await ensure_default_rules()
    query = SegmentRule.all() if include_inactive else SegmentRule.filter(active=True)
    return list(await query.order_by("priority", "id"))


# -- editing (staff) ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    """A rule's fields; on update, None leaves a field as it is (``clear`` unsets bounds)."""

    name: str | None = None
    key: str | None = None
    description: str | None = None
    benefits: str | None = None
    priority: int | None = None
    active: bool | None = None
    stage: Stage | None = None
    recency_days_min: int | None = None
    recency_days_max: int | None = None
    frequency_min: int | None = None
    frequency_max: int | None = None
    monetary_min: Decimal | None = None
    monetary_max: Decimal | None = None
    clear: tuple[str, ...] = ()


BOUNDS = ("stage", "recency_days_min", "recency_days_max", "frequency_min", "frequency_max", "monetary_min",
          "monetary_max")
_TEXT_LIMITS = {"name": 80, "key": 64, "description": 500, "benefits": 500}


def _camel(name: str) -> str:
    """The input's field name, as clients spell it (``frequency_max`` -> ``frequencyMax``)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _changes(data: RuleInput) -> dict[str, Any]:
    changes = {f.name: getattr(data, f.name) for f in fields(data) if f.name != "clear" and getattr(data, f.name) is not None}
    for name in data.clear:
        name = re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), name)  # camelCase or snake_case
        if name not in BOUNDS:
            raise invalid("clear", f"Only bounds can be cleared ({', '.join(BOUNDS)}).")
        changes[name] = None
    for name, limit in _TEXT_LIMITS.items():
        if name in changes:
            changes[name] = changes[name].strip()
            if len(changes[name]) > limit or (name in ("name", "key") and not changes[name]):
                raise invalid(_camel(name), f"Give 1 to {limit} characters." if name in ("name", "key")
                              else f"At most {limit} characters.")
    for name in ("recency_days_min", "recency_days_max", "frequency_min", "frequency_max"):
        if changes.get(name) is not None and not 0 <= changes[name] <= 100_000:
            raise invalid(_camel(name), "Give a whole number from 0 to 100000.")
    for name in ("monetary_min", "monetary_max"):
        if changes.get(name) is not None:
            try:
                value = Decimal(changes[name])
            except InvalidOperation:
                raise invalid(_camel(name), "Give an amount.") from None
            if not value.is_finite() or value < 0 or value >= Decimal("1e12"):
                raise invalid(_camel(name), "Give an amount from 0.")
            changes[name] = value.quantize(Decimal("0.01"))
    if changes.get("priority") is not None and not -10_000 <= changes["priority"] <= 10_000:
        raise invalid("priority", "Give a priority from -10000 to 10000.")
    return changes


def _check_ranges(rule: SegmentRule) -> None:
    for low, high in (("recency_days_min", "recency_days_max"), ("frequency_min", "frequency_max"),
                      ("monetary_min", "monetary_max")):
        lo, hi = getattr(rule, low), getattr(rule, high)
        if lo is not None and hi is not None and lo > hi:
            raise invalid(_camel(high), f"{_camel(high)} must not be below {_camel(low)}.")


async def create_rule(actor: Actor, data: RuleInput) -> SegmentRule:
    user = require(actor, Action.MANAGE_SEGMENTS)
    changes = _changes(data)
    for required in ("name", "key"):
        if required not in changes:
            raise invalid(required, f"Give the rule's {required}.")
    rule = SegmentRule(**changes, updated_by_id=user.id)
    _check_ranges(rule)
    async with outbox.atomic():
        if await SegmentRule.filter(key=rule.key).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "A rule with this key exists.", "key")
        await rule.save()
        await outbox.enqueue(jobs.refresh_rfm())  # every buyer's segment, under the new rules
    return rule


async def update_rule(actor: Actor, rule_id: int, data: RuleInput) -> SegmentRule:
    user = require(actor, Action.MANAGE_SEGMENTS)
    changes = _changes(data)
    async with outbox.atomic():
        rule = await SegmentRule.filter(id=rule_id).select_for_update().first()
        if rule is None:
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such segment rule.", "id")
        if "key" in changes and changes["key"] != rule.key and await SegmentRule.filter(key=changes["key"]).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "A rule with this key exists.", "key")
        for name, value in changes.items():
            setattr(rule, name, value)
        _check_ranges(rule)
        rule.updated_by_id = user.id
        await rule.save()
        await outbox.enqueue(jobs.refresh_rfm())
    return rule


# -- sizes over time (the segments sweep writes them; the report draws them) ----------------

NO_SEGMENT = "(none)"


async def record_sizes(day: date | None = None) -> int:
    """How many buyers each segment holds now, stored as ``day``'s (UTC) count, replacing an
    earlier count of the same day; how many segments were counted."""
    day = day or datetime.now(UTC).date()
    rows = await BuyerRfm.annotate(n=Count("id")).group_by("segment_rule_id").values("segment_rule_id", "n")
    keys = dict(await SegmentRule.all().values_list("id", "key"))
    sizes: dict[str, int] = {}
    for row in rows:
        key = keys.get(row["segment_rule_id"], NO_SEGMENT) if row["segment_rule_id"] is not None else NO_SEGMENT
        sizes[key] = sizes.get(key, 0) + int(row["n"])
    for key, buyers in sizes.items():
        await SegmentSize.update_or_create(defaults={"buyers": buyers}, day=day, segment_key=key)
    await SegmentSize.filter(day=day).exclude(segment_key__in=list(sizes) or [NO_SEGMENT]).delete()
    return len(sizes)


async def size_history(start: date, end: date) -> list[SegmentSize]:
    """The stored daily counts over [start, end), by day then segment."""
    return list(await SegmentSize.filter(day__gte=start, day__lt=end).order_by("day", "segment_key"))

