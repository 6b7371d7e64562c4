"""Invitations: a code at registration, a reward for both sides once the invitee's first
qualifying order completes, paid once; farming from the inviter's own address or device, small
orders and the monthly cap earn nothing; a bad code makes no account."""

from __future__ import annotations

import asyncio
import uuid

from kameng.settings import configure, get_settings
from models.accounts.users import User
from models.discovery.events import BehaviourEvent, EventKind
from models.loyalty.invitations import Referral, ReferralStatus
from models.loyalty.points import PointsEntry
from resolvers.loyalty import events as loyalty
from tests.conftest import Client, eventually
from tests.test_points import as_client, assert_points_consistent, complete, place_order

INVITATION = "{ myInvitation { code pending rewarded refused } }"
REGISTER = """mutation($input: RegisterInput!) { register(input: $input) {
  errors { code field } user { id } } }"""


async def register(client: Client, code: str | None, device: str | None = None) -> dict:  # type: ignore[type-arg]
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    variables = {"input": {"email": email, "password": "correct horse battery", "nickname": "Friend",
                           "inviteCode": code, "deviceId": device}}
    return (await client.gql(REGISTER, variables))["register"]


async def inviter_with_code(make_client) -> tuple[User, Client, str]:  # type: ignore[no-untyped-def]
    client = make_client()
    payload = await client.register()
    user = await User.get(email=payload["email"])
    first = (await client.gql(INVITATION))["myInvitation"]
    again = (await client.gql(INVITATION))["myInvitation"]
    assert first == again and len(first["code"]) == 8
    return user, client, first["code"]


async def invite_points(user: User) -> int:
    return sum(await PointsEntry.filter(user_id=user.id, rule="invite").values_list("amount", flat=True))


async def test_first_completed_order_rewards_both_once(make_client) -> None:  # type: ignore[no-untyped-def]
    inviter, inviter_client, code = await inviter_with_code(make_client)
    joined = await register(make_client(), code.lower())  # codes are read case-blind
    assert joined["errors"] == []
    invitee = await User.get(id=(await Referral.get(inviter_id=inviter.id)).invitee_id)
    assert (await inviter_client.gql(INVITATION))["myInvitation"]["pending"] == 1

    # A first order below the minimum earns nothing; the next qualifying one does.
    small = await complete(invitee, await place_order(invitee, price="1.00"))
    await loyalty.handle(invitee.id, "ORDER_COMPLETED", f"order:{small.id}")
    assert (await Referral.get(invitee_id=invitee.id)).status == ReferralStatus.PENDING
    order = await complete(invitee, await place_order(invitee, price="30.00"))

    async def rewarded() -> bool:
        return (await Referral.get(invitee_id=invitee.id)).status == ReferralStatus.REWARDED

    await eventually(rewarded, timeout=15)
    # Replays, even concurrent ones, pay nothing more.
    await asyncio.gather(*(loyalty.handle(invitee.id, "ORDER_COMPLETED", f"order:{order.id}") for _ in range(4)))
    settings = get_settings()
    assert await invite_points(inviter) == settings.points_invite_inviter
    assert await invite_points(invitee) == settings.points_invite_invitee
    assert (await Referral.get(invitee_id=invitee.id)).order_id == order.id
    assert (await inviter_client.gql(INVITATION))["myInvitation"] == {
        "code": code, "pending": 0, "rewarded": 1, "refused": 0}
    await assert_points_consistent(inviter, invitee)


async def test_a_bad_code_makes_no_account(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    before = await User.all().count()
    for code in ["NOPE", "ZZZZZZZZ", "'; DROP", "x" * 5000, "\u202eABCDEFG"]:
        payload = await register(client, code)
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", "inviteCode")]
    bad_device = await register(client, None, device="no spaces allowed")
    assert [(e["code"], e["field"]) for e in bad_device["errors"]] == [("INVALID_INPUT", "deviceId")]
    assert await User.all().count() == before
    assert (await register(client, None))["errors"] == []  # no code: an ordinary sign-up
    assert (await register(client, ""))["errors"] == []


async def test_own_address_or_device_earns_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    inviter, inviter_client, code = await inviter_with_code(make_client)
    # The second account from the inviter's own address.
    same_address = make_client(ip=inviter_client.ip)
    assert (await register(same_address, code))["errors"] == []
    # ... and one from a device the inviter used.
    device = f"dev-{uuid.uuid4().hex[:12]}"
    await BehaviourEvent.create(event_id=uuid.uuid4().hex, kind=EventKind.PAGE_VISIT, user_id=inviter.id,
                                device_id=device, occurred_at=inviter.created_at)
    assert (await register(make_client(), code, device=device))["errors"] == []
    refused = await Referral.filter(inviter_id=inviter.id).order_by("id")
    assert [(r.status, r.refusal) for r in refused] == [
        (ReferralStatus.REFUSED, "same address as the inviter"), (ReferralStatus.REFUSED, "same device as the inviter")]
    invitee = await User.get(id=refused[0].invitee_id)
    order = await complete(invitee, await place_order(invitee, price="30.00"))
    await loyalty.handle(invitee.id, "ORDER_COMPLETED", f"order:{order.id}")
    assert await invite_points(inviter) == 0 and await invite_points(invitee) == 0
    assert (await inviter_client.gql(INVITATION))["myInvitation"]["refused"] == 2


async def test_the_monthly_cap_refuses_more(make_client) -> None:  # type: ignore[no-untyped-def]
    before = get_settings()
    configure(before.model_copy(update={"invite_rewards_per_month": 1}))
    try:
        await _two_invitees_one_reward(make_client)
    finally:
        configure(before)


async def _two_invitees_one_reward(make_client) -> None:  # type: ignore[no-untyped-def]
    inviter, _, code = await inviter_with_code(make_client)
    invitees = []
    for _ in range(2):
        assert (await register(make_client(), code))["errors"] == []
    for referral in await Referral.filter(inviter_id=inviter.id).order_by("id"):
        invitees.append(await User.get(id=referral.invitee_id))
    for invitee in invitees:
        order = await complete(invitee, await place_order(invitee, price="30.00"))
        await loyalty.handle(invitee.id, "ORDER_COMPLETED", f"order:{order.id}")
    statuses = [r.status for r in await Referral.filter(inviter_id=inviter.id).order_by("id")]
    assert statuses == [ReferralStatus.REWARDED, ReferralStatus.REFUSED]
    assert await invite_points(inviter) == get_settings().points_invite_inviter  # from the first only


async def test_invitation_needs_a_signed_in_user(client: Client) -> None:
    response = await client.post(INVITATION)
    body = response.json()
    assert body["data"] is None or body["data"].get("myInvitation") is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
