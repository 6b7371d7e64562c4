"""Campaigns (issue 12 item 3): two overlapping campaigns to one segment, run at the same moment
through the API (asyncio.gather of runCampaign requests), send at most one message per user
within the cap, hold their control groups out untouched, send nothing twice on a re-run, grant
their offers, and their results count opens, clicks and real orders in both arms; quiet hours,
validation and permissions; the report's new sections."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from models.accounts.notifications import Notification
from models.accounts.users import Role
from models.commerce.catalog import DeliveryKind
from models.commerce.orders import Order
from models.lifecycle.campaigns import Arm, Campaign, CampaignMember, MarketingCap
from models.lifecycle.segments import BuyerRfm, SegmentRule, Stage
from resolvers.lifecycle import analytics, campaigns, segments
from resolvers.loyalty import points
from service import report
from tests.conftest import Client, eventually
from tests.factories import fund, make_merchant, make_product, make_user, make_users, token_for
from tests.test_delivery import buy, gid, pk

CREATE = """mutation($input: CreateCampaignInput!) { result: createCampaign(input: $input) {
  errors { code field } campaign { id controlPercent timezone audience } } }"""
RUN = """mutation($input: CampaignInput!) { result: runCampaign(input: $input) {
  errors { code field } sent heldOut capped skipped quiet } }"""
RESULTS = """query($id: ID!) { result: campaignResults(id: $id) { errors { code field } results {
  treatment { users delivered opened clicked converted conversionRate revenue }
  control { users delivered opened clicked converted conversionRate revenue }
  uplift { difference low high pValue } } } }"""
CLICK = """mutation($input: TrackCampaignClickInput!) { result: trackCampaignClick(input: $input) {
  errors { code field } first } }"""
READ = """mutation($input: MarkNotificationsReadInput!) { markNotificationsRead(input: $input) { errors { code } marked } }"""


async def client_of(make_client: Any, user: Any) -> Client:
    client: Client = make_client()
    client.token = await token_for(user)
    return client


async def segment_of_users(count: int) -> tuple[str, list[int]]:
    """A fresh segment rule and ``count`` buyers placed in it (as the RFM job would)."""
    key = f"camp-{uuid.uuid4().hex[:10]}"
    rule = await SegmentRule.create(key=key, name="Campaign test", priority=5000, frequency_min=99_999)
    users = await make_users(count)
    now = datetime.now(UTC)
    await BuyerRfm.bulk_create([BuyerRfm(
        user_id=u.id, recency_days=40, frequency=1, monetary=Decimal("20.00"), first_purchase_at=now - timedelta(days=40),
        last_purchase_at=now - timedelta(days=40), stage=Stage.SILENT, segment_rule_id=rule.id, computed_at=now)
        for u in users])
    return key, [u.id for u in users]


def no_quiet_hours(**extra: Any) -> dict[str, Any]:
    return {"quietStartHour": 0, "quietEndHour": 0, **extra}


async def create(admin: Client, **fields: Any) -> dict[str, Any]:
    return (await admin.gql(CREATE, {"input": {"name": "Win back", "title": "We miss you", "body": "A gift inside.",
                                               **fields}}))["result"]


async def test_two_overlapping_campaigns_cap_hold_out_and_measure_uplift(make_client) -> None:  # type: ignore[no-untyped-def]
    admin = await client_of(make_client, await make_user(Role.ADMIN, "Admin"))
    key, users = await segment_of_users(40)
    a = await create(admin, audience="SEGMENT", segmentKey=key, controlPercent=25, offer="POINTS", points=30,
                     **no_quiet_hours())
    b = await create(admin, audience="SEGMENT", segmentKey=key, controlPercent=25, offer="BENEFIT",
                     benefit="PRIORITY_SUPPORT", **no_quiet_hours())
    assert a["errors"] == [] and b["errors"] == [] and a["campaign"]["timezone"] == "Asia/Shanghai"
    ids = {name: pk(c["campaign"]["id"]) for name, c in (("a", a), ("b", b))}

    # Both campaigns, twice each, at the same moment.
    runs = await asyncio.gather(*(admin.gql(RUN, {"input": {"id": c["campaign"]["id"]}}) for c in (a, b, a, b)))
    outcomes = [r["result"] for r in runs]
    assert all(o["errors"] == [] and o["quiet"] is False for o in outcomes), outcomes

    members = await CampaignMember.filter(campaign_id__in=list(ids.values())).values("campaign_id", "user_id", "arm")
    treated: dict[int, int] = {}
    for m in members:
        treated[m["user_id"]] = treated.get(m["user_id"], 0) + (m["arm"] == Arm.TREATMENT)
        # The control group is the hash's, per (user, campaign).
        campaign = await Campaign.get(id=m["campaign_id"])
        assert (m["arm"] == Arm.CONTROL) == campaigns.held_out(campaign, m["user_id"])
    assert max(treated.values()) == 1  # never two messages to one user
    assert set(treated) == set(users)  # everyone is in at least one campaign, as sent or held out
    sent = sum(o["sent"] for o in outcomes)
    assert sent == sum(treated.values()) == len([m for m in members if m["arm"] == Arm.TREATMENT])
    assert sum(o["heldOut"] for o in outcomes) == len([m for m in members if m["arm"] == Arm.CONTROL]) > 0
    assert await MarketingCap.filter(user_id__in=users, last_sent_at__isnull=False).count() == sent

    # A re-run sends nothing: every user is in the campaign or capped for 7 days.
    for c in (a, b):
        again = (await admin.gql(RUN, {"input": {"id": c["campaign"]["id"]}}))["result"]
        assert again["sent"] == 0 and again["heldOut"] == 0, again

    # The messages leave through the outbox, one notification per treated user; none to control.
    await eventually(lambda: _all_delivered(ids.values()), timeout=15)
    notes = await Notification.filter(user_id__in=users, kind=campaigns.NOTIFICATION_KIND).values("user_id", "data")
    assert sorted(n["user_id"] for n in notes) == sorted(u for u, n in treated.items() if n)
    control = {(m["campaign_id"], m["user_id"]) for m in members if m["arm"] == Arm.CONTROL}
    assert not any((n["data"]["campaign"], n["user_id"]) in control for n in notes)

    # The offers were granted with the message, and only with it.
    a_members = [m for m in members if m["campaign_id"] == ids["a"]]
    a_treated = [m["user_id"] for m in a_members if m["arm"] == Arm.TREATMENT]
    a_control = [m["user_id"] for m in a_members if m["arm"] == Arm.CONTROL]
    assert len(a_treated) >= 3 and len(a_control) >= 1, (a_treated, a_control)
    for user_id in a_treated:
        assert (await points.posted(user_id, "campaign", f"campaign:{ids['a']}")).amount == 30  # type: ignore[union-attr]
    assert all([await points.posted(u, "campaign", f"campaign:{ids['a']}") is None for u in a_control])
    b_treated = [m["user_id"] for m in members if m["campaign_id"] == ids["b"] and m["arm"] == Arm.TREATMENT]
    assert all([await points.has_perk(u, "PRIORITY_SUPPORT") for u in b_treated])

    # Opens, clicks and real orders: two treated users of A buy (one opened and clicked), one
    # held-out user buys too.
    product = await make_product(await make_merchant(), kind=DeliveryKind.CARD_KEY, price="15.00", keys=5)
    buyers = [*a_treated[:2], a_control[0]]
    for user_id in buyers:
        user = await fund_user(user_id)
        api = await client_of(make_client, user)
        assert (await buy(api, product.id))["code"] == "OK"
    opener = await client_of(make_client, await fund_user(a_treated[0]))
    note = await Notification.get(user_id=a_treated[0], kind=campaigns.NOTIFICATION_KIND)
    assert (await opener.gql(READ, {"input": {"ids": [gid("Notification", note.id)]}}))["markNotificationsRead"]["marked"] == 1
    click = {"input": {"campaignId": a["campaign"]["id"]}}
    assert (await opener.gql(CLICK, click))["result"] == {"errors": [], "first": True}
    assert (await opener.gql(CLICK, click))["result"] == {"errors": [], "first": False}
    stranger = await client_of(make_client, await make_user())
    assert (await stranger.gql(CLICK, click))["result"]["errors"][0]["code"] == "NOT_FOUND"

    results = (await admin.gql(RESULTS, {"id": a["campaign"]["id"]}))["result"]
    assert results["errors"] == []
    t, c = results["results"]["treatment"], results["results"]["control"]
    assert (t["users"], t["delivered"], t["opened"], t["clicked"], t["converted"]) == (len(a_treated), len(a_treated), 1, 1, 2)
    assert (c["users"], c["delivered"], c["opened"], c["clicked"], c["converted"]) == (len(a_control), 0, 0, 0, 1)
    assert Decimal(t["revenue"]) == Decimal("30.00") and Decimal(c["revenue"]) == Decimal("15.00")
    uplift = results["results"]["uplift"]
    assert uplift["difference"] == (2 / len(a_treated)) - (1 / len(a_control)) or abs(
        uplift["difference"] - (2 / len(a_treated) - 1 / len(a_control))) < 1e-9
    assert uplift["low"] <= uplift["difference"] <= uplift["high"] and 0 <= uplift["pValue"] <= 1
    # Results are an ADMIN's: a moderator is refused.
    moderator = await client_of(make_client, await make_user(Role.MODERATOR, "Mod"))
    assert (await moderator.gql(RESULTS, {"id": a["campaign"]["id"]}))["result"]["errors"][0]["code"] == "FORBIDDEN"


async def fund_user(user_id: int) -> Any:
    from models.accounts.users import User

    user = await User.get(id=user_id)
    await fund(user, "15.00")
    return user


async def _all_delivered(campaign_ids: Any) -> bool:
    return not await CampaignMember.filter(campaign_id__in=list(campaign_ids), arm=Arm.TREATMENT,
                                           delivered_at__isnull=True).exists()


async def test_quiet_hours_validation_and_permissions(make_client) -> None:  # type: ignore[no-untyped-def]
    admin = await client_of(make_client, await make_user(Role.ADMIN, "Admin"))
    key, users = await segment_of_users(3)
    hour = datetime.now(ZoneInfo("Asia/Shanghai")).hour
    quiet = await create(admin, audience="SEGMENT", segmentKey=key, quietStartHour=hour, quietEndHour=(hour + 1) % 24)
    done = (await admin.gql(RUN, {"input": {"id": quiet["campaign"]["id"]}}))["result"]
    assert done["quiet"] is True and done["sent"] == 0
    assert not await CampaignMember.filter(campaign_id=pk(quiet["campaign"]["id"])).exists()
    # Quiet hours across midnight, in the campaign's zone.
    night = Campaign(quiet_start_hour=22, quiet_end_hour=8, timezone="Asia/Shanghai")
    assert campaigns.in_quiet_hours(night, datetime(2026, 1, 1, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    assert campaigns.in_quiet_hours(night, datetime(2026, 1, 1, 23, 0, tzinfo=UTC))  # 07:00
    assert not campaigns.in_quiet_hours(night, datetime(2026, 1, 2, 0, 0, tzinfo=UTC))  # 08:00

    bad = [
        ({"audience": "SEGMENT", "segmentKey": "no-such-rule"}, "segmentKey"),
        ({"audience": "RISK_BAND", "riskBand": "EXTREME"}, "riskBand"),
        ({"audience": "NO_VISIT"}, "triggerDays"),
        ({"audience": "NO_VISIT", "triggerDays": 7, "offer": "POINTS"}, "points"),
        ({"audience": "NO_VISIT", "triggerDays": 7, "offer": "BENEFIT", "benefit": "FREE_LUNCH"}, "benefit"),
        ({"audience": "NO_VISIT", "triggerDays": 7, "timezone": "Mars/Olympus"}, "timezone"),
        ({"audience": "NO_VISIT", "triggerDays": 7, "controlPercent": 80}, "controlPercent"),
        ({"audience": "NO_VISIT", "triggerDays": 7, "quietStartHour": 24}, "quietStartHour"),
    ]
    before = await Campaign.all().count()
    for fields, field in bad:
        payload = await create(admin, **fields)
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)], (fields, payload)
    assert await Campaign.all().count() == before
    for role in (Role.BUYER, Role.MODERATOR):
        other = await client_of(make_client, await make_user(role, "Other"))
        refused = await create(other, audience="SEGMENT", segmentKey=key)
        assert refused["errors"][0]["code"] == "FORBIDDEN"
        assert (await other.gql(RUN, {"input": {"id": quiet["campaign"]["id"]}}))["result"]["errors"][0]["code"] == "FORBIDDEN"
        assert (await other.gql("{ campaigns { id } }"))["campaigns"] == []
    listed = (await admin.gql("{ campaigns { id name audience } }"))["campaigns"]
    assert quiet["campaign"]["id"] in [c["id"] for c in listed]


async def test_trigger_audiences(make_client) -> None:  # type: ignore[no-untyped-def]
    """NO_VISIT, AFTER_DELIVERY and EXPIRING find the users their trigger names, and only them."""
    from models.discovery.events import BehaviourEvent, EventKind
    from tests.test_tickets import delivered_order

    gone, back, fresh = await make_users(3)
    now = datetime.now(UTC)
    for user, days in ((gone, 9), (back, 9), (back, 1)):
        await BehaviourEvent.create(event_id=uuid.uuid4().hex, kind=EventKind.PAGE_VISIT, user_id=user.id,
                                    device_id="d", occurred_at=now - timedelta(days=days), personalised=True)
    no_visit = Campaign(id=1, audience=campaigns.AudienceKind.NO_VISIT, trigger_days=7)
    found = set(await campaigns.audience(no_visit, now))
    assert gone.id in found and back.id not in found and fresh.id not in found
    await delivered_order(fresh, days_ago=7.5)
    await delivered_order(back, days_ago=20)
    after = Campaign(id=1, audience=campaigns.AudienceKind.AFTER_DELIVERY, trigger_days=7)
    found = set(await campaigns.audience(after, now))
    assert fresh.id in found and back.id not in found
    # EXPIRING: a delivered item whose validity ends within the trigger's days.
    soon, later = await make_users(2)
    for user, days in ((soon, 2), (later, 10)):
        order = await delivered_order(user, days_ago=20)
        await Order.filter(id=order.id).update(valid_until=now + timedelta(days=days))
    expiring = Campaign(id=1, audience=campaigns.AudienceKind.EXPIRING, trigger_days=3)
    found = set(await campaigns.audience(expiring, datetime.now(UTC)))
    assert soon.id in found and later.id not in found


async def test_report_sections_segment_sizes_and_campaign_uplift(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    admin = await client_of(make_client, await make_user(Role.ADMIN, "Admin"))
    key, users = await segment_of_users(12)
    created = await create(admin, audience="SEGMENT", segmentKey=key, controlPercent=50, name="Report campaign",
                           **no_quiet_hours())
    assert (await admin.gql(RUN, {"input": {"id": created["campaign"]["id"]}}))["result"]["errors"] == []
    assert await segments.record_sizes() >= 1
    assert await segments.record_sizes() >= 1  # a second count the same day replaces the first
    r = await analytics.compute()
    mine = [c for c in r.segment_sizes if c.segment == key]
    assert len(mine) == 1 and mine[0].buyers == 12
    assert any(c.campaign_id == pk(created["campaign"]["id"]) for c in r.campaign_uplift)
    written = report.write(r, tmp_path)
    names = {p.name for p in written}
    for section in ("segment_sizes", "campaign_uplift"):
        assert {f"{section}.{ext}" for ext in ("csv", "json", "png", "svg")} <= names
    sizes = json.loads((tmp_path / "segment_sizes.json").read_text())
    assert {"day": datetime.now(UTC).date().isoformat(), "segment": key, "buyers": 12, "suppressed": False} in sizes
    rows = [row for row in json.loads((tmp_path / "campaign_uplift.json").read_text())
            if row["campaign_id"] == pk(created["campaign"]["id"])]
    assert sorted(row["arm"] for row in rows) == ["CONTROL", "TREATMENT"]
    assert sum(row["users"] or 0 for row in rows) <= 12
    assert "campaign_uplift" in report.CHARTS and "segment_sizes" in report.CHARTS
    assert report.svg("campaign_uplift", r).lstrip().startswith("<?xml")


MARKETING = """mutation($input: SetMarketingMessagesInput!) { result: setMarketingMessages(input: $input) {
  errors { code field } enabled } }"""


async def test_a_user_who_turns_marketing_off_is_left_out_of_campaigns(make_client) -> None:  # type: ignore[no-untyped-def]
    """Off: left out of a run before the arms are drawn (neither messaged nor held out, no offer),
    a message queued before is not delivered, and order notifications still come."""
    from models.accounts.users import User

    admin = await client_of(make_client, await make_user(Role.ADMIN, "Admin"))
    key, users = await segment_of_users(8)
    quitter, late_quitter, *others = users
    api = await client_of(make_client, await User.get(id=quitter))
    viewer = "{ viewer { marketingMessages } }"
    assert (await api.gql(viewer))["viewer"] == {"marketingMessages": True}
    assert (await api.gql(MARKETING, {"input": {"enabled": False}}))["result"] == {"errors": [], "enabled": False}
    assert (await api.gql(viewer))["viewer"] == {"marketingMessages": False}
    # Private: another buyer reads null; a guest cannot choose for anyone.
    stranger = await client_of(make_client, await make_user())
    node = "query($id: ID!) { node(id: $id) { ... on User { marketingMessages } } }"
    assert (await stranger.gql(node, {"id": gid("User", quitter)}))["node"] == {"marketingMessages": None}
    guest = make_client()
    refused = (await guest.gql(MARKETING, {"input": {"enabled": False}}))["result"]
    assert refused["errors"][0]["code"] == "UNAUTHENTICATED" and refused["enabled"] is None

    created = await create(admin, audience="SEGMENT", segmentKey=key, controlPercent=0, offer="POINTS", points=10,
                           **no_quiet_hours())
    campaign_id = pk(created["campaign"]["id"])
    run = """mutation($input: CampaignInput!) { result: runCampaign(input: $input) {
      errors { code } sent heldOut optedOut } }"""
    done = (await admin.gql(run, {"input": {"id": created["campaign"]["id"]}}))["result"]
    assert done == {"errors": [], "sent": 7, "heldOut": 0, "optedOut": 1}
    assert not await CampaignMember.filter(campaign_id=campaign_id, user_id=quitter).exists()
    assert await points.posted(quitter, "campaign", f"campaign:{campaign_id}") is None

    # A message already queued for a user who turns marketing off is not delivered.
    member = await CampaignMember.get(campaign_id=campaign_id, user_id=late_quitter)
    await eventually(lambda: _all_delivered([campaign_id]), timeout=15)
    # As if its job had not run yet: undelivered, no notification.
    await CampaignMember.filter(id=member.id).update(delivered_at=None, notification_id=None)
    await Notification.filter(user_id=late_quitter, kind=campaigns.NOTIFICATION_KIND).delete()
    late = await client_of(make_client, await User.get(id=late_quitter))
    assert (await late.gql(MARKETING, {"input": {"enabled": False}}))["result"]["enabled"] is False
    assert await campaigns.deliver(member.id) is False
    assert not await Notification.filter(user_id=late_quitter, kind=campaigns.NOTIFICATION_KIND).exists()
    assert await Notification.filter(user_id__in=others, kind=campaigns.NOTIFICATION_KIND).count() == len(others)

    assert await CampaignMember.get(id=member.id).values_list("delivered_at", flat=True) is None

    # And back on.
    assert (await api.gql(MARKETING, {"input": {"enabled": True}}))["result"]["enabled"] is True
    assert (await User.get(id=quitter)).marketing is True
