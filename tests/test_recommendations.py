"""Recommendations (issue 11, items 2, 4 and 6): a guide read moves its product onto the reader's
HOME after the training job, serving costs at most two SQL queries, unavailable and owned
one-off products never show, cold start is never empty, attribution tokens feed the staff's
CTR / conversion / GMV share, and products are compared side by side."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from strawberry.relay import GlobalID

from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind, Product, ProductStatus
from models.commerce.orders import Order, OrderStatus
from models.community.posts import Post, PostKind
from models.community.topics import Topic
from models.discovery.events import EventKind
from models.lifecycle.experiments import Experiment
from resolvers.commerce.orders import new_order_no
from resolvers.discovery import recommendations, storage, training
from resolvers.discovery.recommendations import TokenClaims, issue_token, read_token
from resolvers.discovery.tracking import TrackedEvent, record
from resolvers.lifecycle import experiments, exposures
from tests.conftest import Client, count_queries
from tests.factories import make_merchant, make_product, make_user, token_for

HOME = """query($first: Int!, $device: String) { recommendations(surface: HOME, first: $first, deviceId: $device) {
  modelVersion items { product { id title } reason { kind text referenceId } token score } } }"""
SURFACE = """query($s: RecommendationSurface!, $p: ID, $q: ID, $first: Int!) {
  recommendations(surface: $s, productId: $p, postId: $q, first: $first) {
  items { product { id } reason { kind text } token } posts { id kind title } } }"""
STATS = """query($from: Date!, $to: Date!) { recommendationStats(from: $from, to: $to) { days {
  day surface modelVersion impressions clicks ctr orders conversion gmv { amount } gmvShare } } }"""


@pytest.fixture(autouse=True)
async def everyone_on_the_model(stack) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    """These tests are about the model: the A/B experiment "recommendations" (which serves half
    of the users popularity, tests/test_recommendation_experiment.py) gives it all the weight."""
    found = await experiments.get_experiment(recommendations.EXPERIMENT)
    assert found is not None
    await Experiment.filter(id=found.id).update(arms=[{"name": "popularity", "weight": 0}, {"name": "model", "weight": 100}])
    experiments.forget(recommendations.EXPERIMENT)
    yield
    await Experiment.filter(id=found.id).update(arms=found.arms)
    experiments.forget(recommendations.EXPERIMENT)


def gid(kind: str, key: int) -> str:
    return str(GlobalID(kind, str(key)))


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def signed(make_client, user: User) -> Client:  # type: ignore[no-untyped-def]
    client: Client = make_client()
    client.token = await token_for(user)
    return client


async def paid_order(buyer: User, product: Product, *, at: datetime | None = None, total: str = "10.00") -> Order:
    at = at or datetime.now(UTC) - timedelta(hours=1)
    return await Order.create(
        order_no=new_order_no(), buyer=buyer, product=product, merchant_id=product.merchant_id, quantity=1,
        unit_price=Decimal(total), total=Decimal(total), status=OrderStatus.COMPLETED,
        idempotency_scope=f"u:{buyer.id}", idempotency_key=uuid.uuid4().hex, expires_at=at + timedelta(minutes=15),
        paid_at=at,
    )


async def view_post(user: User, post_id: int, times: int = 1) -> None:
    await record([TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.POST_VIEW, user_id=user.id, post_id=post_id)
                  for _ in range(times)])


class World:
    """A shop whose best sellers (C) everyone buys, a guide's product (A) bought with B by a few."""

    def __init__(self) -> None:
        self.a: Product
        self.b: Product
        self.popular: list[Product] = []
        self.guide: Post
        self.reader: User


async def make_world() -> World:
    world = World()
    shop = await make_merchant()
    world.a = await make_product(shop, kind=DeliveryKind.DIRECT_TOPUP)
    world.b = await make_product(shop, kind=DeliveryKind.DIRECT_TOPUP)
    world.popular = [await make_product(shop, kind=DeliveryKind.DIRECT_TOPUP) for _ in range(6)]
    await Product.filter(id__in=[p.id for p in world.popular]).update(sold_count=10_000)
    buyers = [await make_user() for _ in range(12)]
    for i, buyer in enumerate(buyers):
        for product in world.popular:
            await paid_order(buyer, product)
        if i < 4:
            await paid_order(buyer, world.a)
            await paid_order(buyer, world.b)
    author = await make_user(nickname="Author")
    world.guide = await Post.create(author=author, kind=PostKind.GUIDE, title=f"Cheap top-ups {uuid.uuid4().hex[:4]}",
                                    body="How to", body_html="<p>How to</p>", product=world.a)
    world.reader = await make_user(nickname="Reader")
    return world


async def home(client: Client, first: int = 5, device: str | None = None) -> dict[str, Any]:
    body = (await client.post(HOME, {"first": first, "device": device})).json()
    assert "errors" not in body, body
    return body["data"]["recommendations"]


async def test_a_guide_read_moves_its_product_onto_the_readers_home(make_client) -> None:  # type: ignore[no-untyped-def]
    world = await make_world()
    reader = await signed(make_client, world.reader)
    await training.train()
    before = await home(reader)
    assert before["items"], "cold start is never empty"
    assert gid("Product", world.a.id) not in [i["product"]["id"] for i in before["items"]]

    await view_post(world.reader, world.guide.id, times=2)
    await training.train()
    after = await home(reader)
    shown = {i["product"]["id"]: i for i in after["items"]}
    assert gid("Product", world.a.id) in shown, after
    reason = shown[gid("Product", world.a.id)]["reason"]
    assert reason["kind"] == "FROM_GUIDE_YOU_READ" and world.guide.title in reason["text"]
    assert reason["referenceId"] == world.guide.id
    # The model carries it further: B is bought with A.
    assert gid("Product", world.b.id) in shown, after
    assert shown[gid("Product", world.b.id)]["reason"]["kind"] == "POPULAR_WITH_BUYERS_OF"
    assert after["modelVersion"].startswith("ease-")
    claims = read_token(shown[gid("Product", world.a.id)]["token"])
    assert claims is not None and claims.surface == "HOME" and claims.product_id == world.a.id
    assert claims.user_id == world.reader.id and claims.model_version == after["modelVersion"]


async def test_serving_costs_at_most_two_sql_queries(make_client) -> None:  # type: ignore[no-untyped-def]
    world = await make_world()
    await view_post(world.reader, world.guide.id)
    await training.train()
    reader = await signed(make_client, world.reader)
    await home(reader)  # warm: the session lookup is cached like any request's
    # The warm call queued the reader's exposure; written now, so that the flusher's own
    # statements cannot land in the measured window (count_queries sees the whole process).
    await exposures.flush()
    with count_queries() as queries:
        served = await home(reader, first=10)
    assert served["items"]
    ours = [s for s in queries.statements if "recommendation_list" in s or '"product"' in s or "product p" in s]
    assert len(ours) <= 2, ours
    # The A/B arm costs no SQL once the process has the experiment's definition.
    assert not [s for s in queries.statements if "experiment" in s], queries.statements


async def test_unavailable_and_owned_one_off_products_are_never_recommended(make_client) -> None:  # type: ignore[no-untyped-def]
    world = await make_world()
    one_off = await make_product(kind=DeliveryKind.MANUAL, max_quantity=1)
    sold_out = await make_product(kind=DeliveryKind.DIRECT_TOPUP, stock_limit=0)
    card_key = await make_product(kind=DeliveryKind.CARD_KEY)  # no keys: sold out
    guide = await Post.create(author=world.reader, kind=PostKind.GUIDE, title="All of them", body="x", body_html="x",
                              product=sold_out)
    for product in (one_off, card_key):
        await record([TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.PRODUCT_VIEW, user_id=world.reader.id,
                                   product_id=product.id) for _ in range(3)])
    await paid_order(world.reader, one_off)
    await view_post(world.reader, world.guide.id)
    await view_post(world.reader, guide.id)
    await training.train()
    reader = await signed(make_client, world.reader)
    shown = [i["product"]["id"] for i in (await home(reader, first=50))["items"]]
    for product in (one_off, sold_out, card_key):
        assert gid("Product", product.id) not in shown
    assert gid("Product", world.a.id) in shown
    # Hidden after training: gone at once (serving re-checks).
    await Product.filter(id=world.a.id).update(status=ProductStatus.HIDDEN)
    shown = [i["product"]["id"] for i in (await home(reader, first=50))["items"]]
    assert gid("Product", world.a.id) not in shown


async def test_cold_start_is_never_empty(client: Client) -> None:
    await make_world()
    await training.train()
    fresh = await home(client, first=5, device=f"dev-{uuid.uuid4().hex}")
    assert len(fresh["items"]) == 5
    assert {i["reason"]["kind"] for i in fresh["items"]} <= {"TRENDING", "NEW_AND_WELL_REVIEWED"}
    newcomer = await make_product(kind=DeliveryKind.DIRECT_TOPUP)  # after training: no list of its own
    body = (await client.post(SURFACE, {"s": "PRODUCT", "p": gid("Product", newcomer.id), "first": 4})).json()
    items = body["data"]["recommendations"]["items"]
    assert len(items) == 4 and gid("Product", newcomer.id) not in [i["product"]["id"] for i in items]


async def test_product_after_purchase_post_and_circle_surfaces(client: Client) -> None:
    world = await make_world()
    review = await Post.create(author=world.reader, kind=PostKind.REVIEW, title="Worth it", body="y", body_html="y",
                               product=world.a, rating=5)
    await training.train()
    body = (await client.post(SURFACE, {"s": "PRODUCT", "p": gid("Product", world.a.id), "first": 3})).json()
    items = body["data"]["recommendations"]["items"]
    assert items[0]["product"]["id"] == gid("Product", world.b.id)
    assert items[0]["reason"]["kind"] == "POPULAR_WITH_BUYERS_OF"
    body = (await client.post(SURFACE, {"s": "AFTER_PURCHASE", "p": gid("Product", world.a.id), "first": 3})).json()
    after = body["data"]["recommendations"]
    assert after["items"][0]["product"]["id"] == gid("Product", world.b.id)
    assert {p["id"] for p in after["posts"]} == {gid("Post", world.guide.id), gid("Post", review.id)}
    body = (await client.post(SURFACE, {"s": "POST", "q": gid("Post", world.guide.id), "first": 3})).json()
    on_post = body["data"]["recommendations"]["items"]
    assert on_post[0]["product"]["id"] == gid("Product", world.a.id)
    assert on_post[0]["reason"]["kind"] == "FROM_GUIDE_YOU_READ"
    similar = (await client.post("query($id: ID!) { node(id: $id) { ... on Product { similar(first: 2) { id } } } }",
                                 {"id": gid("Product", world.a.id)})).json()
    assert similar["data"]["node"]["similar"][0]["id"] == gid("Product", world.b.id)


async def test_bad_arguments_are_refused(client: Client) -> None:
    body = (await client.post(SURFACE, {"s": "PRODUCT", "first": 3})).json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    body = (await client.post(SURFACE, {"s": "HOME", "first": 0})).json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


def test_tokens_are_signed() -> None:
    claims = TokenClaims("HOME", "ease-1", 42, 7, recommendations.device_hash("d"), 1_700_000_000)
    token = issue_token(claims)
    assert read_token(token) == claims and len(token) <= 200
    body, signature = token.split(".")
    forged = issue_token(TokenClaims("HOME", "ease-1", 43, 7, None, 1_700_000_000), key=b"x" * 32)
    assert read_token(forged) is None
    assert read_token(f"{forged.split('.')[0]}.{signature}") is None
    assert read_token("garbage") is None


async def test_staff_see_ctr_conversion_and_gmv_share_from_real_events(make_client) -> None:  # type: ignore[no-untyped-def]
    world = await make_world()
    await view_post(world.reader, world.guide.id)
    await training.train()
    reader = await signed(make_client, world.reader)
    served = await home(reader, first=4)
    item = next(i for i in served["items"] if i["product"]["id"] == gid("Product", world.a.id))
    now = datetime.now(UTC)
    # Impression, click and order in this order within today (UTC): the stats are per day, and
    # a run just after midnight must not split them over two days.
    start = max(datetime.combine(now.date(), time.min, tzinfo=UTC), now - timedelta(minutes=5))
    step = (now - start) / 4
    events = [TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.RECOMMENDATION_IMPRESSION, user_id=world.reader.id,
                           product_id=pk(i["product"]["id"]), token=i["token"], occurred_at=start)
              for i in served["items"]]
    events.append(TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.RECOMMENDATION_CLICK, user_id=world.reader.id,
                               product_id=world.a.id, token=item["token"], occurred_at=start + step))
    events.append(TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.RECOMMENDATION_CLICK, user_id=world.reader.id,
                               product_id=world.a.id, token=item["token"][:-2] + "AA",  # forged: not counted
                               occurred_at=start + step))
    await record(events)
    await paid_order(world.reader, world.a, at=start + 2 * step, total="30.00")
    staff = await signed(make_client, await make_user(Role.MODERATOR))
    today = now.date().isoformat()
    body = (await staff.post(STATS, {"from": today, "to": today})).json()
    rows = [r for r in body["data"]["recommendationStats"]["days"]
            if r["surface"] == "HOME" and r["modelVersion"] == served["modelVersion"]]
    assert len(rows) == 1, body
    row = rows[0]
    assert row["impressions"] == len(served["items"]) and row["clicks"] == 1
    assert row["ctr"] == 1 / len(served["items"]) and row["orders"] == 1 and row["conversion"] == 1.0
    assert Decimal(row["gmv"]["amount"]) == Decimal("30.00") and 0 < row["gmvShare"] <= 1
    buyer = await signed(make_client, await make_user())
    assert (await buyer.post(STATS, {"from": today, "to": today})).json()["data"]["recommendationStats"] is None
    too_long = (await staff.post(STATS, {"from": "2026-01-01", "to": date(2026, 12, 31).isoformat()})).json()
    assert too_long["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_compare_products_side_by_side(client: Client) -> None:
    shop = await make_merchant()
    cheap = await make_product(shop, kind=DeliveryKind.DIRECT_TOPUP, price="10.00",
                               wholesale_tiers=[{"minQuantity": 10, "unitPrice": "9.00"}])
    other = await make_product(shop, kind=DeliveryKind.DIRECT_TOPUP, price="12.00")
    await Product.filter(id=other.id).update(rating_sum=9, review_count=2, sold_count=5)
    author = await make_user()
    await Post.create(author=author, kind=PostKind.REVIEW, title="ok", body="ok", body_html="ok", product=other,
                      rating=5, verified_purchase=True)
    query = """query($ids: [ID!]!) { compareProducts(ids: $ids) { product { id } unitPrice { amount }
      bestUnitPrice { amount } bestUnitPriceFrom promiseMinutes measuredDelivery { deliveredOrders }
      rating reviewCount verifiedReviewCount soldCount } }"""
    body = (await client.post(query, {"ids": [gid("Product", cheap.id), gid("Product", other.id)]})).json()
    first, second = body["data"]["compareProducts"]
    assert first["bestUnitPrice"]["amount"] == "9.00" and first["bestUnitPriceFrom"] == 10
    assert first["unitPrice"]["amount"] == "10.00" and first["rating"] is None
    assert second["rating"] == 4.5 and second["verifiedReviewCount"] == 1 and second["soldCount"] == 5
    assert second["measuredDelivery"]["deliveredOrders"] == 0 and second["promiseMinutes"] == 10
    one = (await client.post(query, {"ids": [gid("Product", cheap.id)]})).json()
    assert one["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_purchases_circles_and_devices_shape_their_lists(make_client) -> None:  # type: ignore[no-untyped-def]
    world = await make_world()
    circle = await Topic.create(slug=f"circle-{uuid.uuid4().hex[:8]}", name="A buyers", product=world.a)
    await paid_order(world.reader, world.a)
    device = f"dev-{uuid.uuid4().hex}"
    await record([TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.PRODUCT_VIEW, device_id=device,
                               product_id=world.a.id) for _ in range(2)])
    await training.train()
    reader = await signed(make_client, world.reader)
    shown = {i["product"]["id"]: i for i in (await home(reader, first=10))["items"]}
    assert shown[gid("Product", world.b.id)]["reason"]["kind"] == "BECAUSE_YOU_BOUGHT"
    assert world.a.title in shown[gid("Product", world.b.id)]["reason"]["text"]
    body = (await reader.post(SURFACE, {"s": "CIRCLE", "p": gid("Product", world.a.id), "first": 3})).json()
    in_circle = body["data"]["recommendations"]["items"]
    assert in_circle[0]["reason"]["kind"] == "TRENDING_IN_CIRCLE" and circle.product_id == world.a.id
    assert gid("Product", world.a.id) not in [i["product"]["id"] for i in in_circle]
    anonymous = await home(make_client(), first=10, device=device)
    kinds = {i["product"]["id"]: i["reason"]["kind"] for i in anonymous["items"]}
    assert kinds.get(gid("Product", world.b.id)) == "POPULAR_WITH_BUYERS_OF"
    claims = read_token(anonymous["items"][0]["token"])
    assert claims is not None and claims.user_id is None and claims.device == recommendations.device_hash(device)


async def test_a_list_the_next_training_leaves_out_is_not_served_from_its_old_copy(stack) -> None:  # type: ignore[no-untyped-def]
    """Serving reads the Redis copy first: a HOME list the next run leaves out (a user with no behaviour
    in its window) left the table but stayed in Redis, and was served from there until the copy
    expired, hours later, beside the new run's lists."""
    now = datetime.now(UTC)
    kept, left = f"u:{(await make_user()).id}", f"u:{(await make_user()).id}"
    # Empty lists: rows and copies all the same, and nothing a later test could be served.
    await storage.publish("run-1", {kept: [], left: [], "trending": []}, {}, {}, now)
    assert set(await storage.fetch([left, "trending"])) == {left, "trending"}
    # A millisecond later, not more: a run stamped in the future would keep later tests' runs out.
    await storage.publish("run-2", {kept: [], "trending": []}, {}, {}, now + timedelta(milliseconds=1))
    assert await storage.fetch([left]) == {}
    assert {owner: version for owner, (version, _, _) in (await storage.fetch([kept, "trending"])).items()} == {
        kept: "run-2", "trending": "run-2"}
