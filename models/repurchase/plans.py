"""Product plans (flexible product subscriptions): a buyer's standing order of a product,
renewed every period through an ordinary order, and one renewal row per (plan, period)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class PlanStatus(StrEnum):
    ACTIVE = "ACTIVE"  # renews (auto-renew on) or ends (off) at next_renewal_at
    PAUSED = "PAUSED"  # no renewal while paused, the next one moves by the pause
    CANCELLED = "CANCELLED"  # by the buyer, for good
    LAPSED = "LAPSED"  # ended unrenewed (retries used up, or auto-renew off), renewable by hand


class RenewalState(StrEnum):
    IDLE = "IDLE"  # no renewal open
    RENEWING = "RENEWING"  # a PlanRenewal of period + 1 is PENDING (claimed, or failed and retrying)


class ProductPlan(Model):
    """A buyer's plan of one product. ``period`` is the last period paid (or skipped), and
    ``next_renewal_at`` the end of it, when period + 1 is due. Changes to product, quantity
    or period length wait in the ``pending_*`` columns until the next renewal."""

    id = fields.BigIntField(primary_key=True)
    buyer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="product_plans", on_delete=fields.RESTRICT
    )
    product: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Product", related_name="plans", on_delete=fields.RESTRICT
    )
    quantity = fields.IntField()
    period_days = fields.IntField()
    auto_renew = fields.BooleanField(default=True)
    topup_account = fields.CharField(max_length=120, default="")
    idempotency_key = fields.CharField(max_length=80)  # the same key of a buyer is the same plan
    status = fields.CharEnumField(PlanStatus, max_length=16, default=PlanStatus.ACTIVE)
    renewal_state = fields.CharEnumField(RenewalState, max_length=16, default=RenewalState.IDLE)
    period = fields.IntField(default=0)
    next_renewal_at = fields.DatetimeField()
    paused_at = fields.DatetimeField(null=True)
    pending_product_id = fields.BigIntField(null=True)
    pending_quantity = fields.IntField(null=True)
    pending_period_days = fields.IntField(null=True)
    ended_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "product_plan"
        unique_together = (("buyer_id", "idempotency_key"),)
        indexes = (("status", "renewal_state", "next_renewal_at"), ("buyer_id", "id"))


class RenewalStatus(StrEnum):
    PENDING = "PENDING"  # to be charged (attempt ``attempts``), at next_attempt_at
    PAID = "PAID"  # its order is paid
    SKIPPED = "SKIPPED"  # the buyer skipped this period
    LAPSED = "LAPSED"  # retries used up, or the plan was cancelled or paused meanwhile


class PlanRenewal(Model):
    """One period of a plan. Unique per (plan, period): a period is charged at most once.
    Each attempt's order has the idempotency key plan-<plan>-<period>-<attempt>, and a new
    attempt starts only after the previous attempt's order was cancelled unpaid."""

    id = fields.BigIntField(primary_key=True)
    plan: fields.ForeignKeyRelation[ProductPlan] = fields.ForeignKeyField(
        "kameng.ProductPlan", related_name="renewals", on_delete=fields.CASCADE
    )
    period = fields.IntField()
    status = fields.CharEnumField(RenewalStatus, max_length=16, default=RenewalStatus.PENDING)
    attempts = fields.IntField(default=0)  # failed attempts so far
    next_attempt_at = fields.DatetimeField()
    leased_until = fields.DatetimeField(null=True)  # a job was sent for it, until then
    order_id = fields.BigIntField(null=True)
    manual = fields.BooleanField(default=False)
    last_error = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "plan_renewal"
        unique_together = (("plan_id", "period"),)
        indexes = (("status", "next_attempt_at"),)
