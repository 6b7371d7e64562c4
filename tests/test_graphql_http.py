"""The /graphql endpoint: transport rules, limits enforced before execution, error masking,
Relay nodes with batched loading, and the operational routes."""

from __future__ import annotations

import httpx
import pytest
from strawberry.relay import GlobalID

from kameng.settings import Settings
from schema import build_schema
from tests.conftest import Client, count_queries


async def test_typename_over_post_and_get(http: httpx.AsyncClient) -> None:
    post = await http.post("/graphql", json={"query": "{ __typename }"})
    assert post.json() == {"data": {"__typename": "Query"}}
    get = await http.get("/graphql", params={"query": "{ __typename }"})
    assert get.json() == {"data": {"__typename": "Query"}}


async def test_mutations_are_refused_over_get(http: httpx.AsyncClient) -> None:
    query = 'mutation { login(input: {email: "a@example.com", password: "x"}) { errors { code } } }'
    response = await http.get("/graphql", params={"query": query})
    assert response.status_code in (400, 405)


async def test_one_operation_per_request(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": "query A { __typename } query B { __typename }", "operationName": "A"}
    )
    body = response.json()
    assert body.get("data") is None
    assert "one operation" in body["errors"][0]["message"]


async def test_batched_requests_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json=[{"query": "{ __typename }"}, {"query": "{ __typename }"}])
    assert response.status_code == 400


def _deep_query(depth: int) -> str:
    query = "id"
    for _ in range(depth):
        query = f"viewer {{ {query} }}"
    return f"{{ {query} }}"


async def test_deep_query_is_refused_before_it_runs(http: httpx.AsyncClient) -> None:
    with count_queries() as queries:
        response = await http.post("/graphql", json={"query": _deep_query(50)})
    body = response.json()
    assert body.get("data") is None
    assert any("exceeds maximum operation depth" in e["message"] for e in body["errors"]), body
    assert queries.count == 0


async def test_many_aliases_are_refused_before_they_run(http: httpx.AsyncClient) -> None:
    aliases = " ".join(f"a{i}: viewer {{ id }}" for i in range(1000))
    with count_queries() as queries:
        response = await http.post("/graphql", json={"query": f"{{ {aliases} }}"})
    body = response.json()
    assert body.get("data") is None
    message = body["errors"][0]["message"]
    assert "aliases" in message or "token" in message.lower(), message
    assert queries.count == 0


async def test_alias_limit_alone(http: httpx.AsyncClient) -> None:
    # Few enough tokens to parse; too many aliases.
    aliases = " ".join(f"a{i}: __typename" for i in range(40))
    body = (await http.post("/graphql", json={"query": f"{{ {aliases} }}"})).json()
    assert "aliases" in body["errors"][0]["message"]


async def test_token_limit(http: httpx.AsyncClient) -> None:
    fields = " ".join("__typename" for _ in range(3000))
    body = (await http.post("/graphql", json={"query": f"{{ {fields} }}"})).json()
    assert "token" in body["errors"][0]["message"].lower()


def test_introspection_can_be_disabled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    query = "{ __schema { queryType { name } } }"
    kwargs = {"data_dir": tmp_path, "secret_key": "s" * 40}
    assert build_schema(Settings(**kwargs)).execute_sync(query).errors is None
    result = build_schema(Settings(introspection=False, **kwargs)).execute_sync(query)
    assert result.errors and "introspection" in result.errors[0].message.lower()


async def test_unexpected_errors_are_masked_with_the_request_id(client: Client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from resolvers.accounts import notifications

    await client.register()

    async def broken(actor):  # type: ignore[no-untyped-def]
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(notifications, "unread_count", broken)
    response = await client.post("{ viewer { unreadNotificationCount } }")
    error = response.json()["errors"][0]
    assert error["message"] == "Unexpected error."
    assert "hunter2" not in response.text
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


async def test_incoming_request_id_is_kept_if_sane(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": "abc-123-def-456"})
    assert response.headers["x-request-id"] == "abc-123-def-456"
    response = await http.post("/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": "<script>"})
    assert response.headers["x-request-id"] != "<script>"


async def test_node_and_nodes_resolve_users_in_one_batch(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    ids = []
    for _ in range(3):
        other = make_client()
        ids.append((await other.register())["user"]["id"])
    await client.register()
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on User { nickname email } } }"
    with count_queries() as few:
        small = await client.gql(query, {"ids": ids[:1]})
    many_ids = ids * 7  # 21 ids, repeats included
    with count_queries() as many:
        big = await client.gql(query, {"ids": many_ids})
    assert [n["id"] for n in big["nodes"]] == many_ids
    assert all(n["email"] is None for n in big["nodes"])  # other users' emails stay hidden
    assert small["nodes"][0]["id"] == ids[0]
    assert many.count == few.count  # batched: the page size does not change the query count


async def test_node_hides_what_the_viewer_may_not_see(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    await client.register()
    data = await client.gql("{ viewer { notifications(first: 1) { edges { node { id } } } } }")
    note_id = data["viewer"]["notifications"]["edges"][0]["node"]["id"]
    stranger = make_client()
    await stranger.register()
    query = "query($id: ID!) { node(id: $id) { id } }"
    assert (await client.gql(query, {"id": note_id}))["node"] == {"id": note_id}
    assert (await stranger.gql(query, {"id": note_id}))["node"] is None
    missing = str(GlobalID("User", "999999999"))
    assert (await client.gql(query, {"id": missing}))["node"] is None


async def test_connection_paging_is_keyset_and_capped(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    account = await client.register()
    for _ in range(3):
        await make_client().login(account["email"], account["password"])
    from tests.conftest import eventually

    async def four() -> bool:
        d = await client.gql("{ viewer { notifications(first: 10) { totalCount } } }")
        return d["viewer"]["notifications"]["totalCount"] == 4

    await eventually(four)
    page_query = """query($first: Int, $after: String, $last: Int, $before: String) { viewer {
      notifications(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }"""
    first = (await client.gql(page_query, {"first": 2}))["viewer"]["notifications"]
    assert len(first["edges"]) == 2 and first["pageInfo"]["hasNextPage"]
    second = (await client.gql(page_query, {"first": 2, "after": first["pageInfo"]["endCursor"]}))["viewer"]["notifications"]
    assert len(second["edges"]) == 2 and not second["pageInfo"]["hasNextPage"]
    assert second["pageInfo"]["hasPreviousPage"]
    seen = [e["node"]["id"] for e in first["edges"] + second["edges"]]
    assert len(set(seen)) == 4
    back = (await client.gql(page_query, {"last": 2, "before": second["pageInfo"]["startCursor"]}))["viewer"]["notifications"]
    assert [e["node"]["id"] for e in back["edges"]] == seen[:2]
    # A new notification arriving does not shift the next page (keyset, not offset).
    await make_client().login(account["email"], account["password"])
    again = (await client.gql(page_query, {"first": 2, "after": first["pageInfo"]["endCursor"]}))["viewer"]["notifications"]
    assert [e["node"]["id"] for e in again["edges"]] == seen[2:]
    for bad in ({"first": 101}, {"first": -1}, {"after": "nonsense"}, {"first": 1, "last": 1}):
        response = await client.post(page_query, bad)
        assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT", bad


async def test_health_ready_and_metrics(http: httpx.AsyncClient, stack) -> None:  # type: ignore[no-untyped-def]
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    if stack.settings.redis_url:
        assert checks["redis"] == "ok"
    if stack.settings.broker_url:
        assert checks["broker"] == "ok"
    await http.post("/graphql", json={"query": "query MetricsProbe { __typename }"})
    metrics = (await http.get("/metrics")).text
    assert 'kameng_graphql_operations_total{operation="MetricsProbe",outcome="ok",type="query"}' in metrics
    assert "kameng_graphql_operation_seconds_bucket" in metrics


@pytest.mark.parametrize("name", ["", "x" * 100, "bad name", "drop;table"])
def test_operation_labels_are_bounded(name: str) -> None:
    from kameng.observability import operation_label

    assert operation_label(name) == "anonymous"
