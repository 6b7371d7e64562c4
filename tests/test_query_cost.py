"""Query cost (issue 9): the model's numbers, refusal above the maximum before anything runs,
``extensions.cost`` on every response, and a per-client budget that empties and refills."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import websockets
from graphql import parse
from strawberry.relay import GlobalID

from kameng import clock, runtime
from kameng.settings import Settings
from schema import build_schema
from schema.cost_model import operation_cost
from tests.conftest import Client, Stack, count_queries
from tests.factories import make_merchant, make_product, make_user, token_for

# (document, variables, cost by the model in schema/cost.py, worked out by hand)
COSTS = [
    # 1 connection + 20 x (edge + node + merchant)
    ("{ products(first: 20) { edges { node { id merchant { id } } } } }", {}, 61),
    # no first/last: the default page of 20; pageInfo is one object; totalCount a scalar
    ("{ products { totalCount edges { cursor node { title } } pageInfo { hasNextPage } } }", {}, 1 + 20 * 2 + 1),
    ("{ products(last: 5) { edges { node { id price { amount } } } } }", {}, 1 + 5 * 3),
    ("query($n: Int) { products(first: $n) { edges { node { id } } } }", {"n": 50}, 1 + 50 * 2),
    ("query($n: Int) { products(first: $n) { edges { node { id } } } }", {}, 1 + 20 * 2),
    # nodes(ids:) by the number of ids; an abstract type costs its dearest possible type
    ('{ nodes(ids: ["a", "b", "c"]) { id ... on Product { merchant { id } } } }', {}, 3 * (1 + 1)),
    ("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a"] * 7}, 7),
    # a plain list with first (its default 10), then nested connections multiply
    ("{ creatorLeaderboard { rank user { id } } }", {}, 10 * 2),
    ("{ posts(first: 10) { edges { node { comments(first: 10) { edges { node { id } } } } } } }", {},
     1 + 10 * (1 + 1 + (1 + 10 * 2))),
    # a plain list without a size argument: query_cost_list_size (10)
    ("{ viewer { orders(first: 5) { edges { node { priceLines { label } } } } } }", {}, 1 + 1 + 5 * (1 + 1 + 10)),
    # fragments are costed where they apply; @skip/@include with their variables
    ("query($skip: Boolean!) { a: products(first: 2) { ...P } b: products(first: 3) @skip(if: $skip) { ...P } }"
     " fragment P on ProductConnection { edges { node { id } } }", {"skip": True}, 1 + 2 * 2),
    ("query($skip: Boolean!) { a: products(first: 2) { ...P } b: products(first: 3) @skip(if: $skip) { ...P } }"
     " fragment P on ProductConnection { edges { node { id } } }", {"skip": False}, (1 + 2 * 2) + (1 + 3 * 2)),
    # introspection reads no data; __typename is free
    ("{ __typename __schema { types { name fields { name } } } }", {}, 1),
    ('mutation { login(input: {email: "a@example.com", password: "x"}) { errors { code } user { id } } }', {},
     1 + 10 + 1),
    ("subscription { notificationReceived { id kind } }", {}, 1),
]

PRODUCTS = """query($merchant: ID!) { products(first: 20, filter: {merchantId: $merchant}) {
  edges { node { id merchant { id } } } } }"""
# 24 x (1 + 100 x 2) = 4824 points, as cheap as a query gets for its cost on an almost empty page.
_EMPTY_PAGE = 'products(first: 100, filter: {search: "no-such-title"}) { edges { node { id } } }'
HEAVY = "{ " + " ".join(f"p{i}: {_EMPTY_PAGE}" for i in range(24)) + " }"
HEAVY_COST = 24 * (1 + 100 * 2)
TOO_COSTLY = "{ posts(first: 100) { edges { node { comments(first: 100) { edges { node { id } } } } } } }"
TOO_COSTLY_COST = 1 + 100 * (1 + 1 + (1 + 100 * 2))


@pytest.fixture
def frozen() -> Iterator[Any]:
    """The clock stopped at the current instant; ``frozen(seconds)`` moves it on."""
    start = clock.now()
    clock.set(start)
    yield lambda seconds: clock.set(start + timedelta(seconds=seconds))
    clock.reset()


@pytest.mark.parametrize(("query", "variables", "expected"), COSTS)
def test_cost_of_representative_documents(query: str, variables: dict[str, Any], expected: int) -> None:
    schema = build_schema(Settings())._schema
    cost = operation_cost(schema, parse(query), None, variables, list_size=10)
    assert cost is not None
    assert cost.requested == expected


async def _signed_in(make_client: Any) -> tuple[Client, int]:
    client = make_client()
    user = await make_user()
    client.token = await token_for(user)
    return client, user.id


async def test_cost_extension_on_a_normal_response(stack: Stack, make_client: Any, frozen: Any) -> None:
    merchant = await make_merchant()
    for _ in range(3):
        await make_product(merchant)
    client, _ = await _signed_in(make_client)
    merchant_id = str(GlobalID("Merchant", str(merchant.id)))
    body = (await client.post(PRODUCTS, {"merchant": merchant_id})).json()
    assert "errors" not in body, body
    assert len(body["data"]["products"]["edges"]) == 3
    settings = stack.settings
    rate = settings.query_budget / settings.query_budget_refill_seconds
    cost = body["extensions"]["cost"]
    full_at = clock.now() + timedelta(seconds=61 / rate)
    assert cost == {
        "requested": 61,
        "actual": 1 + 3 * 3,  # the connection, and an edge, a node and a merchant per product
        "maximum": settings.max_query_cost,
        "limit": settings.query_budget,
        "remaining": settings.query_budget - 61,
        "refillRate": round(rate, 3),
        "resetAt": full_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    # The next request pays again; nothing has refilled while the clock stood still.
    again = (await client.post(PRODUCTS, {"merchant": merchant_id})).json()["extensions"]["cost"]
    assert again["remaining"] == settings.query_budget - 2 * 61


async def test_over_cost_document_is_refused_before_execution(stack: Stack, make_client: Any, frozen: Any) -> None:
    client = make_client("198.51.100.31")  # anonymous: no statement is needed to know who asks
    with count_queries() as queries:
        response = await client.post(TOO_COSTLY)
    body = response.json()
    assert queries.count == 0  # refused before execution
    assert body.get("data") is None
    (error,) = body["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COSTLY", "cost": TOO_COSTLY_COST, "maximumCost": stack.settings.max_query_cost,
    }
    assert str(TOO_COSTLY_COST) in error["message"]
    assert body["extensions"]["cost"]["requested"] == TOO_COSTLY_COST
    # Nothing was taken from the budget.
    cheap = (await client.post("{ viewer { id } }")).json()["extensions"]["cost"]
    assert cheap["requested"] == 1 and cheap["remaining"] == stack.settings.query_budget - 1


async def test_budget_empties_and_refills(stack: Stack, make_client: Any, frozen: Any) -> None:
    settings = stack.settings
    rate = settings.query_budget / settings.query_budget_refill_seconds
    client, user_id = await _signed_in(make_client)
    runs = settings.query_budget // HEAVY_COST
    for run in range(1, runs + 1):
        body = (await client.post(HEAVY)).json()
        assert "errors" not in body, body
        cost = body["extensions"]["cost"]
        assert (cost["requested"], cost["actual"]) == (HEAVY_COST, 24)  # 24 empty connections
        assert cost["remaining"] == settings.query_budget - run * HEAVY_COST
    left = settings.query_budget - runs * HEAVY_COST
    with count_queries() as signing_in:  # what authenticating the bearer token alone costs
        await client.post("{ __typename }")
    with count_queries() as queries:
        response = await client.post(HEAVY)
    body = response.json()
    # Refused before execution: the token's session is read, as for any request, and nothing else.
    assert queries.count == signing_in.count == 1
    assert 'FROM "auth_session" s JOIN "user" u' in queries.statements[0], queries.statements
    assert body.get("data") is None
    (error,) = body["errors"]
    retry = math.ceil((HEAVY_COST - left) / rate)
    assert error["extensions"] == {"code": "RATE_LIMITED", "cost": HEAVY_COST, "remaining": left, "retryAfter": retry}
    assert response.headers["retry-after"] == str(retry)
    assert body["extensions"]["cost"]["remaining"] == left
    # The bucket is where the settings say: in Redis when configured, shared by every API process.
    rt = runtime.current()
    key = f"user:{user_id}"
    if rt.redis is not None:
        assert float(await rt.redis.hget(f"{settings.namespace}:cost:{key}", "points")) == left
    else:
        assert rt.local["query_budget"]._local[key][0] == left
    # Another client (another user, same address) has its own budget.
    other, _ = await _signed_in(make_client)
    other.ip = client.ip
    assert (await other.post(HEAVY)).json()["extensions"]["cost"]["remaining"] == settings.query_budget - HEAVY_COST
    # One second short of the refill the request is still refused; on time it runs.
    frozen(retry - 1)
    assert (await client.post(HEAVY)).json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    frozen(retry)
    body = (await client.post(HEAVY)).json()
    assert "errors" not in body, body
    assert body["extensions"]["cost"]["remaining"] == math.floor(left + retry * rate - HEAVY_COST)
    # After a full refill period the bucket is full again (and never more than full).
    frozen(retry + 10 * settings.query_budget_refill_seconds)
    cost = (await client.post("{ viewer { id } }")).json()["extensions"]["cost"]
    assert cost["remaining"] == settings.query_budget - 1


async def test_anonymous_clients_are_counted_by_address(stack: Stack, make_client: Any, frozen: Any) -> None:
    first = make_client("198.51.100.23")  # TEST-NET-2: no other test uses it
    spent = (await first.post(HEAVY)).json()["extensions"]["cost"]
    assert spent["remaining"] == stack.settings.query_budget - HEAVY_COST
    same_address = make_client("198.51.100.23")
    assert (await same_address.post(HEAVY)).json()["extensions"]["cost"]["remaining"] == (
        stack.settings.query_budget - 2 * HEAVY_COST
    )
    elsewhere = make_client("198.51.100.24")
    assert (await elsewhere.post(HEAVY)).json()["extensions"]["cost"]["remaining"] == (
        stack.settings.query_budget - HEAVY_COST
    )


async def _recv(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["type"] not in ("ka", "ping", "pong"):
            return message


async def _subscribe(stack: Stack, token: str, query: str) -> Any:
    ws = await websockets.connect(stack.ws_url, subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    assert (await _recv(ws))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


async def test_subscription_is_costed_once_at_subscribe(stack: Stack, client: Client, make_client: Any,
                                                        frozen: Any) -> None:
    account = await client.register()
    budget = stack.settings.query_budget
    viewer = "{ viewer { id } }"
    assert (await client.post(viewer)).json()["extensions"]["cost"]["remaining"] == budget - 1
    subscription = "subscription { notificationReceived { id kind } }"
    async with await _subscribe(stack, client.token or "", subscription) as ws:
        await asyncio.sleep(0.2)
        assert (await client.post(viewer)).json()["extensions"]["cost"]["remaining"] == budget - 3
        for _ in range(2):  # each sign-in elsewhere notifies: events are not charged
            await make_client().login(account["email"], account["password"])
            message = await _recv(ws)
            if message.get("payload", {}).get("data", {}).get("notificationReceived", {}).get("kind") == "WELCOME":
                # The registration's own, published after its job's commit: it can reach a
                # subscription begun right after (seen on PostgreSQL; test_sessions_streams too).
                message = await _recv(ws)
            assert message["type"] == "next", message
            assert message["payload"]["data"]["notificationReceived"]["kind"] == "NEW_SIGNIN"
        assert (await client.post(viewer)).json()["extensions"]["cost"]["remaining"] == budget - 4
    # Above the maximum a subscription is refused at subscribe, and nothing is charged.
    heavy = ("subscription { liveFeed { comments(first: 100) { edges { node {"
             " post { comments(first: 100) { edges { node { id } } } } } } } } }")
    async with await _subscribe(stack, client.token or "", heavy) as ws:
        message = await _recv(ws)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"] == {
            "code": "QUERY_TOO_COSTLY", "cost": 2 + 100 * (3 + 1 + 100 * 2),
            "maximumCost": stack.settings.max_query_cost,
        }
    assert (await client.post(viewer)).json()["extensions"]["cost"]["remaining"] == budget - 5


async def test_free_operations_are_neither_charged_nor_reported(make_client: Any, frozen: Any) -> None:
    client = make_client("198.51.100.41")
    assert (await client.post("{ __typename }")).json() == {"data": {"__typename": "Query"}}
    cost = (await client.post("{ viewer { id } }")).json()["extensions"]["cost"]
    assert cost["requested"] == 1 and cost["remaining"] == cost["limit"] - 1
