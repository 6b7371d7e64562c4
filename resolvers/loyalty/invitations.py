"""Invitations: every user has an invite code; a new account registered with it and its first
qualifying order rewards both sides with points, once.

Against farming (one person inviting their own second account):

* a code is taken only at registration, so nobody can invite an existing account or themselves;
* the invitee's registration address, or the device id their client sent, must not be one the
  inviter has used (their sessions' addresses, their behaviour events' devices): else REFUSED;
* the reward waits for an order of at least ``invite_min_order_total`` to COMPLETE (past the
  dispute window, so a refunded order earns nothing);
* an inviter earns at most ``invite_rewards_per_month`` rewards in 30 days; later ones are
  REFUSED (the invitee is told nothing different: the check is on the inviter's side).

The reward is decided by a conditional PENDING -> REWARDED update on the referral and paid as
``invite`` points entries keyed by the referral, so a re-run loyalty job pays nothing twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from tortoise.exceptions import IntegrityError

from kameng import clock
from kameng.settings import get_settings
from models.accounts.users import AuthSession, User
from models.commerce.orders import Order, OrderStatus
from models.discovery.events import BehaviourEvent
from models.loyalty.invitations import InviteCode, Referral, ReferralStatus
from resolvers.accounts import notifications, users
from resolvers.accounts.auth import Actor, require
from resolvers.accounts.sessions import SignedIn
from resolvers.errors import invalid
from resolvers.loyalty import points
from subscriptions import outbox

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O or 1/I to misread
CODE_LENGTH = 8
DEVICE_MAX = 64


@dataclass(frozen=True)
class InvitationSummary:
    code: str
    pending: int
    rewarded: int
    refused: int


def normalise_code(code: str) -> str:
    return "".join((code or "").split()).upper()


async def code_for(user_id: int) -> str:
    """The user's invite code, made on first use (a concurrent first use finds the winner's)."""
    found = await InviteCode.filter(user_id=user_id).first()
    if found is not None:
        return found.code
    for _ in range(5):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        try:
            async with outbox.atomic():
                await InviteCode.create(user_id=user_id, code=code)
            return code
        except IntegrityError:
            found = await InviteCode.filter(user_id=user_id).first()
            if found is not None:
                return found.code
    raise RuntimeError("could not make a unique invite code")


async def summary(actor: Actor) -> InvitationSummary:
    user = require(actor)
    code = await code_for(user.id)
    counts = {status: 0 for status in ReferralStatus}
    for row in await Referral.filter(inviter_id=user.id).values_list("status", flat=True):
        counts[ReferralStatus(row)] += 1
    return InvitationSummary(code, counts[ReferralStatus.PENDING], counts[ReferralStatus.REWARDED],
                             counts[ReferralStatus.REFUSED])


async def inviter_for(code: str | None, field: str = "inviteCode") -> int | None:
    """The inviter a registration names, checked before the account is made (so a mistyped
    code changes nothing): None when no code was given."""
    if code is None or not code.strip():
        return None
    wanted = normalise_code(code)
    if len(wanted) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in wanted):
        raise invalid(field, "This invite code is not valid.")
    found = await InviteCode.filter(code=wanted).first()
    if found is None:
        raise invalid(field, "This invite code is not valid.")
    return found.user_id


def clean_device(device_id: str | None) -> str:
    device = (device_id or "").strip()
    if len(device) > DEVICE_MAX or any(not (c.isalnum() or c in "-_.:") for c in device):
        raise invalid("deviceId", f"A device id is up to {DEVICE_MAX} letters, digits, '-', '_', '.' or ':'.")
    return device


async def attach(invitee: User, inviter_id: int, actor: Actor, device_id: str = "") -> Referral:
    """Record the referral of a newly registered account, refused at once when the new account
    shares an address or a device with the inviter."""
    refusal = ""
    ip = actor.ip or ""
    if ip and await AuthSession.filter(user_id=inviter_id, ip=ip).exists():
        refusal = "same address as the inviter"
    elif device_id and await BehaviourEvent.filter(user_id=inviter_id, device_id=device_id).exists():
        refusal = "same device as the inviter"
    status = ReferralStatus.REFUSED if refusal else ReferralStatus.PENDING
    return await Referral.create(
        inviter_id=inviter_id, invitee_id=invitee.id, status=status, refusal=refusal, ip=ip[:64], device_id=device_id
    )


async def reward_first_order(user_id: int, order: Order) -> bool:
    """Called in the transaction that books a completed order's loyalty (resolvers/loyalty/
    events.py): the first qualifying completed order of an invited account rewards both sides."""
    settings = get_settings()
    if order.status != OrderStatus.COMPLETED or order.total < settings.invite_min_order_total:
        return False
    referral = await Referral.filter(invitee_id=user_id, status=ReferralStatus.PENDING).first()
    if referral is None:
        return False
    now = clock.now()
    await points.lock(referral.inviter_id)  # serialises the inviter's monthly cap (PostgreSQL)
    recent = await Referral.filter(
        inviter_id=referral.inviter_id, status=ReferralStatus.REWARDED, rewarded_at__gte=now - timedelta(days=30)
    ).count()
    if recent >= settings.invite_rewards_per_month:
        await Referral.filter(id=referral.id, status=ReferralStatus.PENDING).update(
            status=ReferralStatus.REFUSED, refusal="inviter's monthly cap reached"
        )
        return False
    won = await Referral.filter(id=referral.id, status=ReferralStatus.PENDING).update(
        status=ReferralStatus.REWARDED, rewarded_at=now, order_id=order.id
    )
    if won != 1:
        return False
    reference = f"referral:{referral.id}"
    await points.post(referral.inviter_id, "invite", reference, settings.points_invite_inviter, "an invitee's first order")
    await points.post(user_id, "invite", reference, settings.points_invite_invitee, "your first order as an invitee")
    await notifications.notify(
        referral.inviter_id, "INVITATION_REWARDED", "Someone you invited completed their first order",
        f"You earned {settings.points_invite_inviter} points.",
        {"referralId": referral.id, "points": settings.points_invite_inviter, "asInviter": True}, dedupe_key=f"invite:{referral.id}:inviter",
    )
    await notifications.notify(
        user_id, "INVITATION_REWARDED", "Thanks for your first order",
        f"You earned {settings.points_invite_invitee} points for joining by invitation.",
        {"referralId": referral.id, "points": settings.points_invite_invitee, "asInviter": False},
        dedupe_key=f"invite:{referral.id}:invitee",
    )
    return True


async def register(
    actor: Actor, *, email: str, password: str, nickname: str, invite_code: str | None, device_id: str | None
) -> SignedIn:
    """Register, invited by ``invite_code`` when given. The code and device id are checked
    first: a bad one is INVALID_INPUT and no account is made."""
    inviter_id = await inviter_for(invite_code)
    device = clean_device(device_id)
    signed_in = await users.register(actor, email=email, password=password, nickname=nickname)
    if inviter_id is not None:
        await attach(signed_in.user, inviter_id, actor, device)
    return signed_in
