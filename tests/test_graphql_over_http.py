"""GraphQL over HTTP to the letter: npm graphql-http's server audit, the two media types, the
statuses of request errors, and clear answers where there used to be internal errors."""

from __future__ import annotations

import httpx
import pytest
from strawberry.relay import GlobalID

from tests import nodejs
from tests.conftest import Client, Stack, count_queries

GRAPHQL_RESPONSE = "application/graphql-response+json"
AS_SPEC = {"accept": GRAPHQL_RESPONSE}


async def test_graphql_http_server_audit_is_all_ok(stack: Stack) -> None:
    results = await nodejs.run("audit.mjs", f"{stack.url}/graphql")
    not_ok = [f"{r['status']}: {r['name']} ({r['reason']})" for r in results if r["status"] != "ok"]
    assert len(results) >= 60 and not not_ok, not_ok


@pytest.mark.parametrize(("body", "reason"), [
    ({"query": "{ __typename"}, "parse"),
    ({"query": "{ noSuchField }"}, "validation"),
    ({"query": "query($n: Int!) { creatorLeaderboard(first: $n) { rank } }", "variables": {"n": "ten"}}, "coercion"),
    ({"query": "query($n: Int!) { creatorLeaderboard(first: $n) { rank } }"}, "missing variable"),
])
async def test_request_errors_are_400_without_data(http: httpx.AsyncClient, body: dict, reason: str) -> None:  # type: ignore[type-arg]
    spec = await http.post("/graphql", json=body, headers=AS_SPEC)
    assert spec.status_code == 400, reason
    assert spec.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert "data" not in spec.json() and spec.json()["errors"], reason
    # application/json keeps the shape older clients read: 200 and "data": null.
    legacy = await http.post("/graphql", json=body, headers={"accept": "application/json"})
    assert legacy.status_code == 200 and legacy.headers["content-type"] == "application/json"
    assert legacy.json()["data"] is None and legacy.json()["errors"]


async def test_a_field_error_keeps_data_and_200(http: httpx.AsyncClient, stack: Stack) -> None:
    ids = [str(GlobalID("User", str(i))) for i in range(stack.settings.max_node_ids + 1)]
    response = await http.post("/graphql", json={"query": "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
                                                 "variables": {"ids": ids}}, headers=AS_SPEC)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None and body["errors"][0]["path"] == ["nodes"]


@pytest.mark.parametrize(("accept", "expected"), [
    (None, "application/json"),
    ("*/*", "application/json"),
    ("application/json", "application/json"),
    (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
    (f"application/json, {GRAPHQL_RESPONSE};q=0.5", "application/json"),
])
async def test_the_answer_has_the_media_type_asked_for(http: httpx.AsyncClient, accept: str | None, expected: str) -> None:
    headers = {"accept": accept} if accept else {}
    request = http.build_request("POST", "/graphql", json={"query": "{ __typename }"}, headers=headers)
    if accept is None:
        del request.headers["accept"]
    response = await http.send(request)
    assert response.status_code == 200 and response.json() == {"data": {"__typename": "Query"}}
    assert response.headers["content-type"].split(";")[0] == expected


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
async def test_a_mutation_over_get_is_405(http: httpx.AsyncClient, accept: str) -> None:
    query = 'mutation { login(input: {email: "a@example.com", password: "x"}) { errors { code } } }'
    with count_queries() as queries:
        response = await http.get("/graphql", params={"query": query}, headers={"accept": accept})
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["message"] == "Mutations are sent with POST."
    assert queries.count == 0


async def test_a_subscription_over_http_names_the_websocket(http: httpx.AsyncClient, stack: Stack) -> None:
    for method in ("POST", "GET"):
        query = "subscription { liveFeed { id } }"
        if method == "POST":
            response = await http.post("/graphql", json={"query": query})
        else:
            response = await http.get("/graphql", params={"query": query})
        assert response.status_code == 400
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "SUBSCRIPTION_NEEDS_WEBSOCKET"
        assert stack.ws_url in error["message"] and "graphql-transport-ws" in error["message"]


async def test_refusals_of_the_transport_are_json(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


MALFORMED_IDS = [
    _b64("Foo:1"), _b64("PageInfo:1"), _b64("Node:1"), _b64("UserError:1"), "!!!not base64", "",
    _b64("Order:1.5"), _b64("Order:0x1"), _b64("Order:"), _b64("Order:-1"), _b64("Order: 1"),
    _b64(f"Order:{2**64}"), _b64(f"User:{2**63}"), _b64("no colon"),
]


async def test_ids_that_name_nothing_answer_null(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    user_id = (await make_client().register())["user"]["id"]
    await client.register()
    query = "query($id: ID!, $ids: [ID!]!) { node(id: $id) { id } nodes(ids: $ids) { id } }"
    for bad in MALFORMED_IDS:
        data = await client.gql(query, {"id": bad, "ids": [bad, user_id, bad]})
        assert data == {"node": None, "nodes": [None, {"id": user_id}, None]}, bad


async def test_too_many_ids_are_refused_before_any_lookup(client: Client, stack: Stack) -> None:
    limit = stack.settings.max_node_ids
    ids = [str(GlobalID("User", str(i + 1))) for i in range(limit + 1)]
    with count_queries() as queries:
        body = (await client.post("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})).json()
    assert queries.count == 0
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT" and str(limit) in error["message"]
    at_limit = await client.gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids[:limit]})
    assert len(at_limit["nodes"]) == limit
