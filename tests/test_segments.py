"""Segments (issue 12, item 1): RFM and segments from real orders (bought, delivered and
confirmed through the API; the refresh job each completion queues does the scoring), stages
and the articles' segments as time passes (the sweep), what staff and the user each see, and
segment rules that only staff (ADMIN) edit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog

from models.accounts.users import Role
from models.commerce.catalog import DeliveryKind
from models.commerce.orders import Order, OrderStatus
from models.lifecycle.segments import BuyerRfm, SegmentRule, Stage
from resolvers.commerce.orders import new_order_no
from resolvers.lifecycle import rfm, segments
from tests.conftest import Client, count_queries, eventually
from tests.factories import make_merchant, make_product, make_user, token_for
from tests.test_delivery import buy, buyer_client, delivered, gid, pk

CONFIRM = """mutation($input: ConfirmReceiptInput!) { confirmReceipt(input: $input) { errors { code } order { status } } }"""
LIFECYCLE = """query($id: ID!) { buyerLifecycle(userId: $id) { recencyDays frequency monetary rScore fScore mScore
  stage segment { key name benefits } } }"""
BENEFITS = "{ myBenefits }"
RULES = "{ segmentRules { id key active priority } }"
CREATE_RULE = """mutation($input: SegmentRuleInput!) { result: createSegmentRule(input: $input) {
  errors { code field } rule { id key frequencyMin monetaryMin active } } }"""
UPDATE_RULE = """mutation($input: SegmentRuleInput!) { result: updateSegmentRule(input: $input) {
  errors { code field } rule { id key active frequencyMin } } }"""


async def staff(make_client, role: Role = Role.ADMIN) -> Client:  # type: ignore[no-untyped-def]
    client = make_client()
    client.token = await token_for(await make_user(role, role.value.title()))
    return client


async def completed_orders(make_client, count: int, price: str) -> tuple[Client, Any]:  # type: ignore[no-untyped-def]
    """A buyer who bought ``count`` card keys at ``price`` through the API and confirmed each."""
    product = await make_product(await make_merchant(), kind=DeliveryKind.CARD_KEY, price=price, keys=count)
    api, buyer = await buyer_client(make_client, str(Decimal(price) * count))
    for _ in range(count):
        order_id = pk((await buy(api, product.id))["order"]["id"])
        await eventually(lambda: delivered(order_id))
        done = (await api.gql(CONFIRM, {"input": {"orderId": gid("Order", order_id)}}))["confirmReceipt"]
        assert done == {"errors": [], "order": {"status": "COMPLETED"}}
    return api, buyer


async def rfm_row(user_id: int, frequency: int) -> BuyerRfm | None:
    row = await BuyerRfm.filter(user_id=user_id).first()
    return row if row is not None and row.frequency == frequency else None


async def test_rfm_and_segment_from_real_orders_seen_by_staff_and_benefits_by_the_user(make_client) -> None:  # type: ignore[no-untyped-def]
    api, buyer = await completed_orders(make_client, 5, "50.00")
    # The completion's refresh_rfm job scored the buyer: no sweep was run.
    row = await eventually(lambda: rfm_row(buyer.id, 5))
    assert (row.recency_days, row.frequency, row.monetary, row.stage) == (0, 5, Decimal("250.00"), Stage.ACTIVE)
    rule = await segments.segment_of(buyer.id)
    assert rule is not None and rule.key == "loyal-high-value"  # R <= 7, F >= 5, M >= 200

    seen = (await (await staff(make_client, Role.MODERATOR)).gql(LIFECYCLE, {"id": gid("User", buyer.id)}))
    life = seen["buyerLifecycle"]
    assert (life["recencyDays"], life["frequency"], life["monetary"], life["stage"]) == (0, 5, "250.00", "ACTIVE")
    assert life["segment"]["key"] == "loyal-high-value" and 1 <= life["fScore"] <= 5
    # The buyer never sees their segment, only what it brings; another buyer sees neither.
    assert (await api.gql(LIFECYCLE, {"id": gid("User", buyer.id)}))["buyerLifecycle"] is None
    assert (await api.gql(BENEFITS))["myBenefits"] == life["segment"]["benefits"]
    other, _ = await buyer_client(make_client)
    assert (await other.gql(LIFECYCLE, {"id": gid("User", buyer.id)}))["buyerLifecycle"] is None
    assert (await other.gql(RULES))["segmentRules"] == []


async def age(user_id: int, days: int) -> None:
    """Time passes: the buyer's orders were paid ``days`` earlier than they were."""
    for order in await Order.filter(buyer_id=user_id):
        await Order.filter(id=order.id).update(paid_at=(order.paid_at or datetime.now(UTC)) - timedelta(days=days))


async def test_stages_and_the_articles_segments_as_time_passes(make_client) -> None:  # type: ignore[no-untyped-def]
    _, one = await completed_orders(make_client, 1, "20.00")
    await eventually(lambda: rfm_row(one.id, 1))
    assert (await rfm.recompute_user(one.id)).stage == Stage.NEW  # type: ignore[union-attr]
    assert (await segments.segment_of(one.id)).key == "new"  # type: ignore[union-attr]

    await age(one.id, 40)
    await rfm.recompute_all()  # the sweep
    row = await BuyerRfm.get(user_id=one.id)
    assert (row.stage, row.recency_days) == (Stage.SILENT, 40)
    assert (await segments.segment_of(one.id)).key == "new-low-value"  # type: ignore[union-attr]  # R>=30 F=1 M<50

    await age(one.id, 60)
    await rfm.recompute_all()
    assert (await BuyerRfm.get(user_id=one.id)).stage == Stage.LAPSED
    assert (await segments.segment_of(one.id)).key == "lapsed-new-customer"  # type: ignore[union-attr]

    _, big = await completed_orders(make_client, 2, "150.00")
    await eventually(lambda: rfm_row(big.id, 2))
    await age(big.id, 120)
    await rfm.recompute_all()
    assert (await segments.segment_of(big.id)).key == "lapsed-high-value"  # type: ignore[union-attr]
    await Order.filter(buyer_id=big.id).update(total=Decimal("20.00"))
    await rfm.recompute_user(big.id)
    assert (await segments.segment_of(big.id)).key == "lapsed-low-frequency"  # type: ignore[union-attr]


async def test_a_refunded_order_no_longer_counts(make_client) -> None:  # type: ignore[no-untyped-def]
    _, buyer = await completed_orders(make_client, 2, "10.00")
    await eventually(lambda: rfm_row(buyer.id, 2))
    order = await Order.filter(buyer_id=buyer.id).first()
    assert order is not None
    await Order.filter(id=order.id).update(status=OrderStatus.REFUNDED)
    assert (await rfm.recompute_user(buyer.id)).frequency == 1  # type: ignore[union-attr]
    await Order.filter(buyer_id=buyer.id).update(status=OrderStatus.REFUNDED)
    assert await rfm.recompute_user(buyer.id) is None and not await BuyerRfm.filter(user_id=buyer.id).exists()


async def test_segment_rules_are_edited_by_staff_only(make_client) -> None:  # type: ignore[no-untyped-def]
    _, buyer = await completed_orders(make_client, 3, "10.00")
    await eventually(lambda: rfm_row(buyer.id, 3))
    key = f"three-plus-{uuid.uuid4().hex[:8]}"
    rule = {"key": key, "name": "Three and more", "benefits": "A thank-you coupon.", "priority": -5,
            "frequencyMin": 3, "frequencyMax": 3, "monetaryMin": "30.00"}
    for role in (None, Role.BUYER, Role.MERCHANT, Role.MODERATOR):
        client = make_client() if role is None else await staff(make_client, role)
        payload = (await client.gql(CREATE_RULE, {"input": rule}))["result"]
        assert payload["rule"] is None and payload["errors"][0]["code"] in ("UNAUTHENTICATED", "FORBIDDEN"), role
    assert not await SegmentRule.filter(key=key).exists()

    admin = await staff(make_client)
    bad = (await admin.gql(CREATE_RULE, {"input": {**rule, "frequencyMax": 1}}))["result"]
    assert bad == {"errors": [{"code": "INVALID_INPUT", "field": "frequencyMax"}], "rule": None}
    assert not await SegmentRule.filter(key=key).exists()

    made = (await admin.gql(CREATE_RULE, {"input": rule}))["result"]
    assert made["errors"] == [] and made["rule"]["monetaryMin"] == "30.00"
    duplicate = (await admin.gql(CREATE_RULE, {"input": rule}))["result"]
    assert [e["code"] for e in duplicate["errors"]] == ["DUPLICATE"]

    async def in_rule(expected: str) -> bool:
        found = await segments.segment_of(buyer.id)
        return found is not None and found.key == expected

    await eventually(lambda: in_rule(key), timeout=10)  # the edit queued every buyer's recompute
    assert key in [r["key"] for r in (await admin.gql(RULES))["segmentRules"]]

    moderator = await staff(make_client, Role.MODERATOR)
    refused = (await moderator.gql(UPDATE_RULE, {"input": {"id": made["rule"]["id"], "active": False}}))["result"]
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"] and (await SegmentRule.get(key=key)).active
    off = (await admin.gql(UPDATE_RULE, {"input": {"id": made["rule"]["id"], "active": False}}))["result"]
    assert off["errors"] == [] and off["rule"]["active"] is False

    async def left_rule() -> bool:
        found = await segments.segment_of(buyer.id)
        return found is not None and found.key != key

    await eventually(left_rule, timeout=10)
    # Seeding again never turns a rule back on, nor duplicates one.
    await segments.ensure_default_rules()
    assert await SegmentRule.filter(key="loyal-high-value").count() == 1


async def swept_buyers() -> dict[int, tuple[int, int, int]]:
    """Six buyers with tied, one-cent-apart and far-apart histories, scored by the sweep."""
    product = await make_product(price="1.00")
    histories = [[("10.10", 3)], [("10.10", 3)], [("33.33", 40), ("0.01", 2)], [("5.00", 200)],
                 [("10.09", 1), ("10.11", 1), ("99.99", 9)], [("250.00", 70)]]
    buyers = []
    for history in histories:
        buyer = await make_user(Role.BUYER)
        for total, days in history:
            at = datetime.now(UTC) - timedelta(days=days)
            await Order.create(order_no=new_order_no(), buyer=buyer, product=product,
                               merchant_id=product.merchant_id, quantity=1, unit_price=Decimal(total),
                               total=Decimal(total), status=OrderStatus.COMPLETED, idempotency_scope=f"u:{buyer.id}",
                               idempotency_key=uuid.uuid4().hex, expires_at=at, paid_at=at)
        buyers.append(buyer.id)
    await rfm.recompute_all()  # the sweep: every buyer scored among every buyer, in memory
    swept = {row.user_id: (row.r_score, row.f_score, row.m_score)
             for row in await BuyerRfm.filter(user_id__in=buyers)}
    assert len(swept) == len(buyers) and len(set(swept.values())) > 2
    return swept


async def refreshed(user_id: int) -> tuple[tuple[int, int, int], list[str]]:
    """One buyer's refresh: its scores and the statements that read other buyers' rows."""
    # The job counts as a request, so that the counter takes it.
    with count_queries() as refresh, structlog.contextvars.bound_contextvars(request_id="refresh_rfm"):
        row = await rfm.recompute_user(user_id)
    assert row is not None
    everyone = [s for s in refresh.statements if f'FROM "{BuyerRfm._meta.db_table}"' in s and "user_id" not in s]
    return (row.r_score, row.f_score, row.m_score), everyone


async def test_one_buyers_refresh_scores_as_the_sweep_does(stack) -> None:  # type: ignore[no-untyped-def]
    """The refresh a completed order queues counts the stored rows in one SQL statement rather than
    reading every buyer's row and sorting them: its quintiles are the sweep's, ties and cents included."""
    swept = await swept_buyers()
    for user_id in swept:
        scores, everyone = await refreshed(user_id)
        assert scores == swept[user_id], user_id
        # Before: every buyer's row, read and sorted per refresh.
        assert [s for s in everyone if "COUNT(" not in s] == [], everyone


@pytest.fixture
def many_buyers(stack, monkeypatch):  # type: ignore[no-untyped-def]
    """As if the buyers were past rfm_exact_below: refreshes rank against held populations."""
    from kameng.settings import configure, get_settings

    monkeypatch.setattr(rfm, "_held", None)  # this process's populations, restored afterwards
    monkeypatch.setattr(rfm, "_stored", 0)
    before = get_settings()
    configure(before.model_copy(update={"rfm_exact_below": 0, "rfm_population_seconds": 3600.0}))
    yield
    configure(before)


async def test_among_many_buyers_a_refresh_ranks_against_the_populations_held(many_buyers) -> None:  # type: ignore[no-untyped-def]
    """Past rfm_exact_below a count would scan every buyer's row per completed order: a refresh
    ranks against the values its process's sweep ranked against (or read at most
    rfm_population_seconds ago), with the same quintiles, and sends no statement over all rows."""
    swept = await swept_buyers()  # the sweep holds what it ranked against
    for user_id in swept:
        scores, everyone = await refreshed(user_id)
        assert scores == swept[user_id], user_id
        assert everyone == [], everyone
    # Once the held values are older than rfm_population_seconds, they are read again, once. (A
    # refresh job left by an earlier test, run by the stack's worker, may be the one that reads.)
    rfm._hold(tuple([] for _ in range(3)))  # type: ignore[arg-type]
    object.__setattr__(rfm._held, "at", rfm._held.at - 3601)
    first, *others = swept
    scores, everyone = await refreshed(first)
    assert scores == swept[first] and len(everyone) <= 1 and all("COUNT(" not in s for s in everyone), everyone
    assert rfm._held is not None and len(rfm._held.populations[0]) >= len(swept), "not read again"
    scores, everyone = await refreshed(others[0])
    assert scores == swept[others[0]] and everyone == [], everyone
