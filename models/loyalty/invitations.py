"""Invitations: a user's invite code and the referrals it made."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class ReferralStatus(StrEnum):
    PENDING = "PENDING"  # registered with the code, no qualifying order completed yet
    REWARDED = "REWARDED"  # both sides rewarded, exactly once
    REFUSED = "REFUSED"  # looked like farming (same address or device as the inviter, over the cap)


class InviteCode(Model):
    """One code per user, made the first time they ask for it."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.BigIntField(unique=True)
    code = fields.CharField(max_length=16, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "invite_code"


class Referral(Model):
    """Who invited whom. ``invitee_id`` is unique: an account is invited at most once, and the
    reward is decided by a conditional PENDING -> REWARDED update, so it is paid once."""

    id = fields.BigIntField(primary_key=True)
    inviter_id = fields.BigIntField(db_index=True)
    invitee_id = fields.BigIntField(unique=True)
    status = fields.CharEnumField(ReferralStatus, max_length=16, default=ReferralStatus.PENDING)
    refusal = fields.CharField(max_length=40, default="")
    ip = fields.CharField(max_length=64, default="")
    device_id = fields.CharField(max_length=64, default="")
    order_id = fields.BigIntField(null=True)  # the invitee's order that earned the reward
    created_at = fields.DatetimeField(auto_now_add=True)
    rewarded_at = fields.DatetimeField(null=True)

    class Meta:
        table = "referral"
        indexes = (("inviter_id", "status", "rewarded_at"),)
