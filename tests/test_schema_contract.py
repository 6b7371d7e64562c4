"""The schema as a frontend reads it: every element described, every connection paged both
ways, and notifications typed by kind (issue 9, item 8)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
)
from strawberry.relay import GlobalID

from kameng.settings import Settings
from models.accounts.notifications import Notification
from models.accounts.users import AuthSession, Role
from models.commerce.payments import Payment, PaymentMethod, PaymentStatus
from models.loyalty.coupons import Coupon, CouponKind, UserCoupon
from models.loyalty.points import PointsEntry
from schema import build_schema
from tests.conftest import Client, count_queries, eventually
from tests.factories import make_merchant, make_product, make_user, token_for

SPEC_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}


def gid(kind: str, key: int) -> str:
    return str(GlobalID(kind, str(key)))


def undescribed() -> list[str]:
    """Every type, field, argument, input field and enum value without a description."""
    missing: list[str] = []
    for name, gql_type in sorted(build_schema(Settings())._schema.type_map.items()):
        if name.startswith("__") or name in SPEC_SCALARS:
            continue
        if not gql_type.description:
            missing.append(name)
        if isinstance(gql_type, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in gql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                missing += [f"{name}.{field_name}({arg})" for arg, a in field.args.items() if not a.description]
        elif isinstance(gql_type, GraphQLInputObjectType):
            missing += [f"{name}.{field}" for field, f in gql_type.fields.items() if not f.description]
        elif isinstance(gql_type, GraphQLEnumType):
            missing += [f"{name}.{value}" for value, v in gql_type.values.items() if not v.description]
    return missing


def test_every_schema_element_is_described() -> None:
    assert undescribed() == []


def test_generic_descriptions_name_their_node_type() -> None:
    types = build_schema(Settings())._schema.type_map
    assert "`Post`" in types["PostConnection"].description
    assert "`Order`" in types["OrderEdge"].fields["node"].description
    assert "{node}" not in types["UserCouponConnection"].fields["totalCount"].description
    assert "this Product" in types["Product"].fields["id"].description


async def test_notification_data_is_deprecated_for_payload(client: Client) -> None:
    data = await client.gql("""{ __type(name: "Notification") { fields(includeDeprecated: true) {
      name isDeprecated deprecationReason } } }""")
    fields = {f["name"]: f for f in data["__type"]["fields"]}
    assert fields["data"]["isDeprecated"] is True and fields["data"]["deprecationReason"] == "Use payload."
    assert fields["payload"]["isDeprecated"] is False
    union = await client.gql('{ __type(name: "NotificationPayload") { kind possibleTypes { name } } }')
    assert union["__type"]["kind"] == "UNION"
    assert "UnknownNotification" in {t["name"] for t in union["__type"]["possibleTypes"]}
    assert isinstance(build_schema(Settings())._schema.type_map["NotificationPayload"], GraphQLUnionType)


# -- both ways ----------------------------------------------------------------------------


def dig(data: dict[str, Any], path: str) -> dict[str, Any]:
    for key in path.split("."):
        data = data[key]
    return data


async def walk(client: Client, query: str, path: str, variables: dict[str, Any], *, size: int = 2) -> list[str]:
    """Cursors of the whole list (one per item, the same whichever way it is reached), page by
    page forward (`first`/`after`)."""
    seen: list[str] = []
    after = None
    for _ in range(200):
        conn = dig(await client.gql(query, {**variables, "first": size, "after": after}), path)
        seen += [edge["cursor"] for edge in conn["edges"]]
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            return seen
        after = conn["pageInfo"]["endCursor"]
    raise AssertionError("the connection never ended")


async def walk_back(client: Client, query: str, path: str, variables: dict[str, Any], *, size: int = 2) -> list[str]:
    """Cursors of the whole list, page by page backward from the end (`last`/`before`), in
    the order met: the last item first."""
    seen: list[str] = []
    before = None
    for _ in range(200):
        conn = dig(await client.gql(query, {**variables, "last": size, "before": before}), path)
        page = [edge["cursor"] for edge in conn["edges"]]
        assert len(page) <= size
        seen += reversed(page)  # each page lists its items in the field's own order
        assert conn["pageInfo"]["hasNextPage"] is (before is not None)
        if not conn["pageInfo"]["hasPreviousPage"]:
            return seen
        before = conn["pageInfo"]["startCursor"]
    raise AssertionError("the connection never ended")


async def both_ways(client: Client, field: str, path: str, variables: dict[str, Any], at_least: int,
                    declared: str = "") -> list[str]:
    """Page ``field`` (a connection selection at ``path``) forward to the end and backward
    from the end: the same items, in reverse."""
    closing = "}" * (field.count("{") - field.count("}"))
    query = f"""query($first: Int, $after: String, $last: Int, $before: String{declared}) {{ {field} {{
      edges {{ cursor node {{ __typename }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} {closing} }}
    """
    forward = await walk(client, query, path, variables)
    backward = await walk_back(client, query, path, variables)
    assert len(forward) >= at_least, (field, forward)
    assert len(set(forward)) == len(forward)
    assert backward == list(reversed(forward)), field
    return forward


async def signed_in(make_client: Any, role: Role = Role.BUYER) -> tuple[Client, Any]:
    user = await make_user(role, "Pager")
    client = make_client()
    client.token = await token_for(user)
    return client, user


CREATE_POST = """mutation($input: CreatePostInput!) { createPost(input: $input) { errors { code } post { id status } } }"""
CREATE_ORDER = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code } order { id } } }"""
PAGE = "first: $first, after: $after, last: $last, before: $before"


async def test_every_connection_pages_both_ways(make_client: Any) -> None:
    author, author_user = await signed_in(make_client)
    reader, reader_user = await signed_in(make_client)
    moderator, _ = await signed_in(make_client, Role.MODERATOR)
    product = await make_product(await make_merchant(), keys=10)
    topic = f"pages-{uuid.uuid4().hex[:8]}"
    for i in range(5):
        made = await author.gql(CREATE_POST, {"input": {
            "kind": "GUIDE", "title": f"Guide {i}", "body": "How to page", "topic": topic,
            "productId": gid("Product", product.id)}})
        assert made["createPost"]["errors"] == [] and made["createPost"]["post"]["status"] == "VISIBLE"
    for i in range(3):
        held = await author.gql(CREATE_POST, {"input": {"kind": "GUIDE", "title": f"Held {i}", "body": "kmholdword"}})
        assert held["createPost"]["post"]["status"] == "HELD"
    follow = await reader.gql("mutation($id: ID!) { follow(input: {targetId: $id}) { errors { code } } }",
                              {"id": gid("User", author_user.id)})
    assert follow["follow"]["errors"] == []
    for _ in range(5):
        order = await reader.gql(CREATE_ORDER, {"input": {
            "productId": gid("Product", product.id), "quantity": 1, "idempotencyKey": uuid.uuid4().hex}})
        assert order["createOrder"]["errors"] == []
    now = datetime.now(UTC)
    for i in range(5):
        coupon = await Coupon.create(code=f"PG{uuid.uuid4().hex[:10]}", title=f"Coupon {i}", kind=CouponKind.FIXED,
                                     value=Decimal("1"), valid_from=now, valid_until=now + timedelta(days=1))
        await UserCoupon.create(coupon=coupon, user=reader_user, source="issue")
        await PointsEntry.create(user=reader_user, amount=i + 1, rule="check_in", reference=f"page:{i}")
        await Notification.create(user=reader_user, kind="WELCOME", title=f"Note {i}")

    feed = "feed(kind: $kind, topic: $topic, " + PAGE + ")"
    for kind in ("LATEST", "HOT", "TOPIC"):
        ids = await both_ways(author, feed, "feed", {"kind": kind, "topic": topic}, 5,
                              ", $kind: FeedKind!, $topic: String")
        assert len(ids) == 5
    following = await both_ways(reader, "feed(kind: FOLLOWING, " + PAGE + ")", "feed", {}, 5)
    assert len(following) == 5
    product_posts = await both_ways(reader, f"product(id: $id) {{ posts({PAGE})", "product.posts",
                                    {"id": gid("Product", product.id)}, 5, ", $id: ID!")
    topic_posts = await both_ways(reader, f"topic(slug: $slug) {{ posts({PAGE})", "topic.posts",
                                  {"slug": topic}, 5, ", $slug: String!")
    assert len(product_posts) == len(topic_posts) == 5
    assert len(await both_ways(reader, f"viewer {{ orders({PAGE})", "viewer.orders", {}, 5)) == 5
    assert len(await both_ways(reader, f"viewer {{ coupons({PAGE})", "viewer.coupons", {}, 5)) >= 5
    assert len(await both_ways(reader, f"viewer {{ notifications({PAGE})", "viewer.notifications", {}, 5)) >= 5
    await both_ways(reader, f"viewer {{ points {{ history({PAGE})", "viewer.points.history", {}, 5)
    await both_ways(author, f"posts(filter: {{topic: $topic}}, {PAGE})", "posts", {"topic": topic}, 5,
                    ", $topic: String")
    await both_ways(author, f"merchant(id: $id) {{ products({PAGE})", "merchant.products",
                    {"id": gid("Merchant", product.merchant_id)}, 1, ", $id: ID!")
    await both_ways(moderator, f"moderationQueue({PAGE})", "moderationQueue", {}, 3)


async def test_moderation_queue_pages_back_from_a_cursor(make_client: Any) -> None:
    moderator, _ = await signed_in(make_client, Role.MODERATOR)
    author, _ = await signed_in(make_client)
    for i in range(3):
        await author.gql(CREATE_POST, {"input": {"kind": "GUIDE", "title": f"Held {i}", "body": "kmholdword"}})
    query = f"""query($first: Int, $after: String, $last: Int, $before: String) {{ moderationQueue({PAGE}) {{
      edges {{ cursor node {{ reason }} }} pageInfo {{ hasNextPage hasPreviousPage }} }} }}"""
    everything = (await moderator.gql(query, {"first": 100}))["moderationQueue"]["edges"]
    cursors = [e["cursor"] for e in everything]
    middle = len(cursors) // 2
    back = (await moderator.gql(query, {"last": 2, "before": cursors[middle]}))["moderationQueue"]
    assert [e["cursor"] for e in back["edges"]] == cursors[max(middle - 2, 0):middle]
    assert back["pageInfo"]["hasNextPage"] is True
    assert back["pageInfo"]["hasPreviousPage"] is (middle > 2)
    both = (await moderator.post(query, {"first": 1, "last": 1})).json()
    assert both["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


# -- typed notifications --------------------------------------------------------------------

PAYLOAD = """query { viewer { notifications(first: 100) { edges { node { kind payload { __typename
  ... on OrderNotification { order { id } }
  ... on PaymentReturnedNotification { order { id } payment { id status } }
  ... on SignInNotification { sessionId ip userAgent signedInAt }
  ... on LikesNotification { likeCount post { id } }
  ... on CommentNotification { post { id } comment { id } }
  ... on DemandFulfilledNotification { post { id } comment { id } product { id } }
  ... on FollowNotification { follower { id } }
  ... on TierChangedNotification { fromTier toTier }
  ... on WalletAdjustedNotification { amount { amount currency } }
  ... on ContentHiddenNotification { post { id } comment { id } }
  ... on MerchantStatusNotification { suspended merchant { id } }
  ... on WelcomeNotification { user { id } }
  ... on UnknownNotification { kind data }
} } } } } }"""


async def test_each_notification_kind_has_its_payload_type(make_client: Any) -> None:
    client = make_client()
    registered = await client.register(nickname="Notified")
    me = registered["user"]["id"]
    user_id = int(GlobalID.from_id(me).node_id)
    other, other_user = await signed_in(make_client)
    merchant = await make_merchant()
    product = await make_product(merchant, keys=3)
    order = (await client.gql(CREATE_ORDER, {"input": {
        "productId": gid("Product", product.id), "quantity": 1, "idempotencyKey": uuid.uuid4().hex}}))
    order_id = int(GlobalID.from_id(order["createOrder"]["order"]["id"]).node_id)
    payment = await Payment.create(order_id=order_id, method=PaymentMethod.EXTERNAL, provider="kpay",
                                   amount=Decimal("10.00"), status=PaymentStatus.REFUNDED_LATE)
    post = (await client.gql(CREATE_POST, {"input": {"kind": "QUESTION", "title": "Typed?", "body": "Which?"}}))
    post_id = int(GlobalID.from_id(post["createPost"]["post"]["id"]).node_id)
    comment = await other.gql("""mutation($input: AddCommentInput!) { addComment(input: $input) {
      errors { code } comment { id } } }""", {"input": {"postId": gid("Post", post_id), "body": "This one"}})
    comment_id = int(GlobalID.from_id(comment["addComment"]["comment"]["id"]).node_id)
    await client.login(registered["email"], registered["password"])  # a NEW_SIGNIN, from a job

    rows = [
        ("ORDER_PAID", {"orderId": order_id}),
        ("PAYMENT_RETURNED", {"orderId": order_id, "paymentId": payment.id}),
        ("LIKES", {"postId": post_id, "likeCount": 3}),
        ("MENTION", {"postId": post_id, "commentId": comment_id}),
        ("DEMAND_FULFILLED", {"postId": post_id, "commentId": comment_id, "productId": product.id}),
        ("FOLLOW", {"userId": other_user.id}),
        ("TIER_CHANGED", {"from": "NORMAL", "to": "SILVER"}),
        ("WALLET_ADJUSTED", {"amount": "-2.50"}),
        ("CONTENT_HIDDEN", {"kind": "POST", "id": post_id}),
        ("MERCHANT_SUSPENDED", {"merchantId": merchant.id}),
        ("SOMETHING_NEW", {"x": 1}),
        ("ORDER_PAID", {"orderId": "not a number"}),
    ]
    for kind, data in rows:
        await Notification.create(user_id=user_id, kind=kind, title=kind, data=data)

    async def payloads() -> list[tuple[str, dict[str, Any]]]:
        edges = (await client.gql(PAYLOAD))["viewer"]["notifications"]["edges"]
        found = [(e["node"]["kind"], e["node"]["payload"]) for e in edges]
        # Falsy until the job has written it, so that `eventually` polls instead of failing.
        return found if any(kind == "NEW_SIGNIN" for kind, _ in found) else None

    found = await eventually(payloads, timeout=30)  # NEW_SIGNIN comes from a job
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for kind, payload in found:
        by_kind.setdefault(kind, []).append(payload)
    order_gid, post_gid, comment_gid = gid("Order", order_id), gid("Post", post_id), gid("Comment", comment_id)
    assert by_kind["WELCOME"] == [{"__typename": "WelcomeNotification", "user": {"id": me}}]
    (signin,) = by_kind["NEW_SIGNIN"]
    session = await AuthSession.get(id=signin["sessionId"], user_id=user_id)
    assert signin == {"__typename": "SignInNotification", "sessionId": str(session.id), "ip": session.ip or None,
                      "userAgent": session.user_agent or None, "signedInAt": session.created_at.isoformat()}
    assert by_kind["ORDER_PAID"] == [
        {"__typename": "UnknownNotification", "kind": "ORDER_PAID", "data": {"orderId": "not a number"}},
        {"__typename": "OrderNotification", "order": {"id": order_gid}},
    ]
    assert by_kind["PAYMENT_RETURNED"] == [{"__typename": "PaymentReturnedNotification", "order": {"id": order_gid},
                                            "payment": {"id": gid("Payment", payment.id), "status": "REFUNDED_LATE"}}]
    assert by_kind["LIKES"] == [{"__typename": "LikesNotification", "likeCount": 3, "post": {"id": post_gid}}]
    assert by_kind["MENTION"] == [{"__typename": "CommentNotification", "post": {"id": post_gid},
                                   "comment": {"id": comment_gid}}]
    assert by_kind["DEMAND_FULFILLED"] == [{"__typename": "DemandFulfilledNotification", "post": {"id": post_gid},
                                            "comment": {"id": comment_gid},
                                            "product": {"id": gid("Product", product.id)}}]
    assert by_kind["FOLLOW"] == [{"__typename": "FollowNotification", "follower": {"id": gid("User", other_user.id)}}]
    assert by_kind["TIER_CHANGED"] == [{"__typename": "TierChangedNotification", "fromTier": "NORMAL",
                                        "toTier": "SILVER"}]
    assert by_kind["WALLET_ADJUSTED"] == [{"__typename": "WalletAdjustedNotification",
                                           "amount": {"amount": "-2.50", "currency": "CNY"}}]
    assert by_kind["CONTENT_HIDDEN"] == [{"__typename": "ContentHiddenNotification", "post": {"id": post_gid},
                                          "comment": None}]
    assert by_kind["MERCHANT_SUSPENDED"] == [{"__typename": "MerchantStatusNotification", "suspended": True,
                                              "merchant": {"id": gid("Merchant", merchant.id)}}]
    assert by_kind["SOMETHING_NEW"] == [{"__typename": "UnknownNotification", "kind": "SOMETHING_NEW",
                                         "data": {"x": 1}}]

    # A payload shows only what its reader may see: someone else's order reads null.
    stranger, stranger_user = await signed_in(make_client)
    await Notification.create(user_id=stranger_user.id, kind="ORDER_PAID", title="Not yours", data={"orderId": order_id})
    theirs = (await stranger.gql(PAYLOAD))["viewer"]["notifications"]["edges"]
    assert [e["node"]["payload"] for e in theirs] == [{"__typename": "OrderNotification", "order": None}]


async def test_a_page_of_notifications_loads_their_objects_in_batches(make_client: Any) -> None:
    client, user = await signed_in(make_client)
    product = await make_product(keys=12)
    for _ in range(12):
        made = await client.gql(CREATE_ORDER, {"input": {
            "productId": gid("Product", product.id), "quantity": 1, "idempotencyKey": uuid.uuid4().hex}})
        order_id = int(GlobalID.from_id(made["createOrder"]["order"]["id"]).node_id)
        await Notification.create(user_id=user.id, kind="ORDER_PAID", title="Paid", data={"orderId": order_id})
    query = """query($first: Int) { viewer { notifications(first: $first) { edges { node { payload {
      ... on OrderNotification { order { id status } } } } } } } }"""
    counts = []
    for first in (2, 12):
        with count_queries() as queries:
            page = (await client.gql(query, {"first": first}))["viewer"]["notifications"]["edges"]
        assert len(page) == first and all(e["node"]["payload"]["order"]["status"] for e in page)
        counts.append(sum(1 for s in queries.statements if 'FROM "orders"' in s))
    assert counts[0] == counts[1] == 1
