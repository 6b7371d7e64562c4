"""Typed notification payloads of the kinds issues 11 to 14 added (gifts, friend-pay,
invitations, tickets, claims, plans, renewal reminders, birthdays): real producers where the
flow is short, stored rows for the rest, and each object read as the reader may see it (a
stranger's notification naming someone else's claim or plan answers null there)."""

from __future__ import annotations

from typing import Any

from strawberry.relay import GlobalID

from models.accounts.notifications import Notification
from models.commerce.merchants import Merchant
from models.trust.claims import Claim, ClaimReason, ClaimStatus
from tests.conftest import Client, eventually
from tests.factories import make_user, token_for
from tests.test_gifts import buyer_client, gift_product, send
from tests.test_renewals import plan_product, subscribe
from tests.test_tickets import delivered_order, open_on

NOTES = """query { viewer { notifications(first: 100) { edges { node { kind payload { __typename
  ... on GiftNotification { gift { id status } }
  ... on FriendPaidNotification { order { id } }
  ... on InvitationRewardedNotification { points asInviter }
  ... on TicketNotification { status ticket { id } order { id } }
  ... on PlanNotification { period retryAt plan { id } order { id } }
  ... on RenewalReminderNotification { at renewWith offerTotal { amount currency } product { id } order { id }
                                       plan { id } }
  ... on ClaimNotification { claim { id status } order { id } }
  ... on BirthdayNotification { year points }
  ... on UnknownNotification { kind data }
} } } } } }"""


def gid(kind: str, key: int) -> str:
    return str(GlobalID(kind, str(key)))


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def payloads(client: Client) -> dict[str, list[dict[str, Any]]]:
    edges = (await client.gql(NOTES))["viewer"]["notifications"]["edges"]
    found: dict[str, list[dict[str, Any]]] = {}
    for edge in reversed(edges):  # oldest first
        found.setdefault(edge["node"]["kind"], []).append(edge["node"]["payload"])
    return found


async def test_gift_and_ticket_notifications_are_typed_for_each_reader(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await gift_product()
    sender_client, _ = await buyer_client(make_client, "50.00")
    recipient_client, recipient = await buyer_client(make_client, "0.00")
    sent = await send(sender_client, product, recipientId=gid("User", recipient.id), message="for you")
    assert sent["errors"] == []
    claim = await recipient_client.gql("""mutation($input: ClaimGiftInput!) { claimGift(input: $input) {
      errors { code } } }""", {"input": {"giftId": sent["gift"]["id"]}})
    assert claim["claimGift"]["errors"] == []
    # Both sides see the gift: the recipient was sent it, the sender's was claimed.
    assert (await payloads(recipient_client))["GIFT_RECEIVED"] == [
        {"__typename": "GiftNotification", "gift": {"id": sent["gift"]["id"], "status": "CLAIMED"}}]
    assert (await payloads(sender_client))["GIFT_CLAIMED"] == [
        {"__typename": "GiftNotification", "gift": {"id": sent["gift"]["id"], "status": "CLAIMED"}}]

    # A ticket opened by the buyer notifies the shop's owner, who sees the ticket and the order.
    buyer = await make_user()
    order = await delivered_order(buyer)
    buyer_client_ = make_client()
    buyer_client_.token = await token_for(buyer)
    opened = await open_on(buyer_client_, order)
    assert opened["errors"] == []
    owner = make_client()
    owner.token = await token_for(await make_user_of(order.merchant_id))

    async def owner_tickets() -> list[dict[str, Any]] | None:
        found = await payloads(owner)
        return found.get("TICKET_MESSAGE", []) + found.get("TICKET_STATUS", [])

    notes = await eventually(owner_tickets, timeout=15)
    for note in notes:  # the opening message (and any status entry), each typed
        assert note["__typename"] == "TicketNotification" and note["ticket"]["id"] == opened["ticket"]["id"]
        assert note["order"] == {"id": gid("Order", order.id)} and note["status"]
    # A stranger handed the same notification sees neither the ticket nor the order.
    stranger_client, stranger = await buyer_client(make_client, "0.00")
    await Notification.create(user_id=stranger.id, kind="TICKET_MESSAGE", title="x",
                              data={"ticketId": pk(opened["ticket"]["id"]), "orderId": order.id, "status": "OPEN"})
    assert (await payloads(stranger_client))["TICKET_MESSAGE"] == [
        {"__typename": "TicketNotification", "status": "OPEN", "ticket": None, "order": None}]


async def make_user_of(merchant_id: int) -> Any:
    from models.accounts.users import User

    return await User.get(id=(await Merchant.get(id=merchant_id)).owner_id)


async def test_claims_plans_reminders_and_the_rest_read_only_what_the_reader_may_see(make_client) -> None:  # type: ignore[no-untyped-def]
    buyer = await make_user()
    await_client = make_client()
    await_client.token = await token_for(buyer)
    from tests.factories import fund

    await fund(buyer, "100.00")
    product = await plan_product()
    subscribed = await subscribe(await_client, product)
    assert subscribed["errors"] == []
    plan_id = pk(subscribed["plan"]["id"])
    order = await delivered_order(buyer)
    claim = await Claim.create(order_id=order.id, subject="NOT_RECEIVED", buyer_id=buyer.id,
                               merchant_id=order.merchant_id, reason=ClaimReason.NOT_RECEIVED,
                               status=ClaimStatus.REJECTED)
    rows = [
        ("FRIEND_PAID", {"orderId": order.id}),
        ("INVITATION_REWARDED", {"referralId": 1, "points": 50, "asInviter": False}),
        ("INVITATION_REWARDED", {}),  # written before the data carried the points
        ("PLAN_RENEWAL_FAILED", {"planId": plan_id, "period": 2, "retryAt": "2030-01-02T03:04:05+00:00"}),
        ("RENEWAL_PLAN_RENEWAL", {"planId": plan_id, "productId": product.id, "at": "2030-01-01T00:00:00+00:00",
                                  "renewWith": "renewPlanNow", "offerTotal": "9.50"}),
        ("RENEWAL_ITEM_EXPIRY", {"orderId": order.id, "productId": order.product_id,
                                 "validUntil": "2030-02-01T00:00:00+00:00", "renewWith": "renewItem"}),
        ("CLAIM_DECIDED", {"claimId": claim.id}),
        ("BIRTHDAY", {"year": 2030, "points": 100}),
        ("GIFT_RECEIVED", {"giftId": "nope"}),
    ]
    stranger = await make_user()
    for kind, data in rows:
        for user in (buyer, stranger):
            await Notification.create(user_id=user.id, kind=kind, title=kind, data=data)

    mine = await payloads(await_client)
    order_ref, plan_ref = {"id": gid("Order", order.id)}, {"id": gid("ProductPlan", plan_id)}
    assert mine["FRIEND_PAID"] == [{"__typename": "FriendPaidNotification", "order": order_ref}]
    assert mine["INVITATION_REWARDED"] == [
        {"__typename": "InvitationRewardedNotification", "points": 50, "asInviter": False},
        {"__typename": "InvitationRewardedNotification", "points": None, "asInviter": None}]
    assert mine["PLAN_RENEWAL_FAILED"] == [{"__typename": "PlanNotification", "period": 2,
                                            "retryAt": "2030-01-02T03:04:05+00:00", "plan": plan_ref, "order": None}]
    assert mine["RENEWAL_PLAN_RENEWAL"] == [{
        "__typename": "RenewalReminderNotification", "at": "2030-01-01T00:00:00+00:00", "renewWith": "renewPlanNow",
        "offerTotal": {"amount": "9.50", "currency": "CNY"}, "product": {"id": gid("Product", product.id)},
        "order": None, "plan": plan_ref}]
    (expiry,) = mine["RENEWAL_ITEM_EXPIRY"]
    assert expiry["order"] == order_ref and expiry["plan"] is None and expiry["renewWith"] == "renewItem"
    assert mine["CLAIM_DECIDED"] == [{"__typename": "ClaimNotification", "claim": {
        "id": gid("Claim", claim.id), "status": "REJECTED"}, "order": None}]
    assert mine["BIRTHDAY"] == [{"__typename": "BirthdayNotification", "year": 2030, "points": 100}]
    assert mine["GIFT_RECEIVED"] == [{"__typename": "UnknownNotification", "kind": "GIFT_RECEIVED",
                                      "data": {"giftId": "nope"}}]

    # The same rows in a stranger's list: typed, but nothing of the buyer's shows through.
    stranger_client = make_client()
    stranger_client.token = await token_for(stranger)
    theirs = await payloads(stranger_client)
    assert theirs["FRIEND_PAID"] == [{"__typename": "FriendPaidNotification", "order": None}]
    assert theirs["PLAN_RENEWAL_FAILED"][0]["plan"] is None
    assert theirs["RENEWAL_PLAN_RENEWAL"][0]["plan"] is None
    assert theirs["RENEWAL_ITEM_EXPIRY"][0]["order"] is None
    assert theirs["CLAIM_DECIDED"] == [{"__typename": "ClaimNotification", "claim": None, "order": None}]
    # The shop's owner reads the claim on their order.
    owner = make_client()
    owner.token = await token_for(await make_user_of(order.merchant_id))
    await Notification.create(user_id=(await Merchant.get(id=order.merchant_id)).owner_id, kind="CLAIM_RESOLVED",
                              title="x", data={"claimId": claim.id, "orderId": order.id})
    (resolved,) = (await payloads(owner))["CLAIM_RESOLVED"]
    assert resolved["claim"] == {"id": gid("Claim", claim.id), "status": "REJECTED"}
