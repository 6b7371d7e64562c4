"""What a campaign did, per arm, from real notifications and orders, and its uplift.

* **delivered**: the channel delivered the message (TREATMENT only);
* **opened**: its in-app notification was read;
* **clicked**: the user followed it (``trackCampaignClick``);
* **converted**: the member paid an order (PAID, DELIVERING, DELIVERED or COMPLETED, i.e. not
  refunded or failed) within ``conversion_days`` after ``assigned_at`` — the same window in
  both arms, so the control group's conversions are what the treatment's would have been
  without the message;
* **uplift**: treatment conversion rate minus control's, with a 95% interval from the normal
  approximation of the difference of two proportions (unpooled standard error,
  ``sqrt(pt(1-pt)/nt + pc(1-pc)/nc)``), and the two-sided p-value of the pooled z-test. Null
  while either arm is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from statistics import NormalDist

from models.accounts.notifications import Notification
from models.commerce.orders import Order, OrderStatus
from models.lifecycle.campaigns import Arm, Campaign, CampaignMember
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action, require
from resolvers.errors import ErrorCode, UserFacingError

CONVERTED = (OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
LEVEL = 0.95
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ArmResult:
    arm: str
    users: int
    delivered: int
    opened: int
    clicked: int
    converted: int
    conversion_rate: float | None
    revenue: Decimal  # paid in the conversion windows


@dataclass(frozen=True, slots=True)
class Uplift:
    difference: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True, slots=True)
class CampaignResult:
    campaign_id: int
    name: str
    treatment: ArmResult
    control: ArmResult
    uplift: Uplift | None


def uplift(converted_t: int, n_t: int, converted_c: int, n_c: int, level: float = LEVEL) -> Uplift | None:
    """Difference of proportions (treatment - control) with its interval; None if an arm is empty."""
    if n_t == 0 or n_c == 0:
        return None
    p_t, p_c = converted_t / n_t, converted_c / n_c
    z = NormalDist().inv_cdf(0.5 + level / 2)
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    diff = p_t - p_c
    pooled = (converted_t + converted_c) / (n_t + n_c)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    p_value = 1.0 if se0 == 0 else 2 * (1 - NormalDist().cdf(abs(diff) / se0))
    return Uplift(diff, diff - z * se, diff + z * se, p_value)


def _chunks(values: list[int]) -> list[list[int]]:
    return [values[i:i + _CHUNK] for i in range(0, len(values), _CHUNK)]


async def compute(campaign: Campaign) -> CampaignResult:
    members = await CampaignMember.filter(campaign_id=campaign.id).values(
        "user_id", "arm", "assigned_at", "delivered_at", "notification_id", "clicked_at")
    notes = [int(m["notification_id"]) for m in members if m["notification_id"] is not None]
    read: set[int] = set()
    for chunk in _chunks(notes):
        read |= set(await Notification.filter(id__in=chunk, read_at__isnull=False).values_list("id", flat=True))
    window = timedelta(days=campaign.conversion_days)
    paid: dict[int, list[tuple[object, Decimal]]] = {}
    if members:
        since = min(m["assigned_at"] for m in members)
        for chunk in _chunks(sorted({int(m["user_id"]) for m in members})):
            for row in await Order.filter(buyer_id__in=chunk, status__in=CONVERTED, paid_at__gte=since).values(
                    "buyer_id", "paid_at", "total"):
                paid.setdefault(int(row["buyer_id"]), []).append((row["paid_at"], Decimal(str(row["total"]))))
    tally = {arm: {"users": 0, "delivered": 0, "opened": 0, "clicked": 0, "converted": 0, "revenue": Decimal(0)}
             for arm in Arm}
    for m in members:
        t = tally[Arm(m["arm"])]
        t["users"] += 1
        t["delivered"] += m["delivered_at"] is not None
        t["opened"] += m["notification_id"] in read
        t["clicked"] += m["clicked_at"] is not None
        start, end = m["assigned_at"], m["assigned_at"] + window
        inside = [total for at, total in paid.get(int(m["user_id"]), []) if start <= at < end]  # type: ignore[operator]
        t["converted"] += bool(inside)
        t["revenue"] += sum(inside, Decimal(0))
    arms = {arm: ArmResult(arm.value, conversion_rate=(t["converted"] / t["users"]) if t["users"] else None, **t)
            for arm, t in tally.items()}
    t, c = arms[Arm.TREATMENT], arms[Arm.CONTROL]
    return CampaignResult(campaign.id, campaign.name, t, c, uplift(t.converted, t.users, c.converted, c.users))


async def results(actor: Actor, campaign_id: int) -> CampaignResult:
    """Staff (ADMIN): one campaign's results."""
    require(actor, Action.READ_CAMPAIGN_RESULTS)
    campaign = await Campaign.filter(id=campaign_id).first()
    if campaign is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such campaign.", "id")
    return await compute(campaign)


async def all_results(limit: int = 20) -> list[CampaignResult]:
    """The latest campaigns' results, without a permission check: for `kameng report`."""
    return [await compute(c) for c in await Campaign.all().order_by("-id").limit(limit)]
