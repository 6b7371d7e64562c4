"""Persisted queries: Apollo Client's automatic persisted queries link (POST and GET) against
the server, the protocol's answers, where registered queries live, and trusted-documents
mode, where nothing but the listed documents runs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from kameng import runtime
from kameng.settings import ConfigurationError
from service.web.persisted import PersistedQueries
from tests import nodejs
from tests.app_server import serve_app
from tests.conftest import Stack


def result(body: dict) -> dict:
    """A GraphQL answer without its extensions (the query cost report moves per request)."""
    return {key: value for key, value in body.items() if key != "extensions"}

def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def unique_query() -> str:
    # A query no other test (or earlier run against the same Redis) has registered.
    return f"query Shelf {{ categories {{ name }} creatorLeaderboard(first: 2) {{ rank }} k{uuid.uuid4().hex[:10]}: __typename }}"


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def apollo(url: str, method: str, query: str) -> dict[str, Any]:
    return await nodejs.run("apollo_persisted.mjs", f"{url}/graphql", method, query)


@pytest.mark.parametrize("method", ["post", "get"])
async def test_apollo_persisted_query_link(stack: Stack, method: str) -> None:
    run = await apollo(stack.url, method, unique_query())
    assert [r["error"] for r in run["results"]] == [None, None], run["results"]
    first, second = (r["data"] for r in run["results"])
    assert first == second and set(first) >= {"categories", "creatorLeaderboard"}
    miss, register, hit = run["exchanges"]
    # 1. hash only -> PersistedQueryNotFound, which the link recognises.
    assert miss["query"] is None and miss["hash"]
    assert miss["body"]["errors"][0] == {"message": "PersistedQueryNotFound",
                                         "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    assert miss["cacheControl"] == "private, no-store"
    # 2. the query with its hash (always POSTed by the link) registers it.
    assert register["method"] == "POST" and register["query"] and register["hash"] == miss["hash"]
    assert register["hash"] == sha256(register["query"]) and "data" in register["body"]
    # 3. the second run sends the hash only, and gets data.
    assert hit["method"] == method.upper() and hit["query"] is None and hit["hash"] == miss["hash"]
    assert hit["status"] == 200 and hit["body"]["data"] == register["body"]["data"]
    if method == "get":
        assert hit["cacheControl"].startswith("public")


async def test_unknown_hash_answers_persisted_query_not_found(http: httpx.AsyncClient) -> None:
    digest = sha256(unique_query())
    legacy = await http.post("/graphql", json={"extensions": persisted(digest)})
    assert legacy.status_code == 200  # what Apollo Server answers, and older links expect
    assert legacy.json() == {"errors": [{"message": "PersistedQueryNotFound",
                                         "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}
    spec = await http.get("/graphql", params={"extensions": json.dumps(persisted(digest))},
                          headers={"accept": "application/graphql-response+json"})
    assert spec.status_code == 404 and "data" not in spec.json()
    assert spec.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert spec.headers["cache-control"] == "private, no-store"


async def test_register_then_hash_only_over_post_and_get(http: httpx.AsyncClient, stack: Stack) -> None:
    query = unique_query()
    digest = sha256(query)
    wrong = await http.post("/graphql", json={"query": query, "extensions": persisted(sha256(query + " "))})
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert (await http.post("/graphql", json={"extensions": persisted(digest)})).json()["errors"]  # not registered by that
    registered = await http.post("/graphql", json={"query": query, "extensions": persisted(digest)})
    expected = registered.json()
    assert "errors" not in expected
    post = await http.post("/graphql", json={"extensions": persisted(digest), "operationName": "Shelf"})
    get = await http.get("/graphql", params={"extensions": json.dumps(persisted(digest))})
    # The same result; extensions.cost carries the client's remaining budget, which moves.
    assert result(post.json()) == result(expected) and result(get.json()) == result(expected)
    redis = runtime.redis()
    if redis is not None:  # shared by every API process, under this deployment's namespace
        assert await redis.get(f"{stack.namespace}:apq:{digest}") in (query, query.encode())
        assert 0 < await redis.ttl(f"{stack.namespace}:apq:{digest}") <= stack.settings.persisted_query_ttl_seconds


@pytest.mark.parametrize("extensions", [
    {"persistedQuery": {"version": 2, "sha256Hash": "a" * 64}},
    {"persistedQuery": {"version": 1, "sha256Hash": "not-hex"}},
    {"persistedQuery": "yes"},
])
async def test_malformed_persisted_query_extension(http: httpx.AsyncClient, extensions: dict[str, Any]) -> None:
    response = await http.post("/graphql", json={"extensions": extensions})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_INVALID"


TRUSTED = "{ categories { name } }"
TRUSTED_SUBSCRIPTION = "subscription { notificationReceived { id } }"


async def subscribe_once(ws_url: str, query: str) -> dict[str, Any]:
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return message["payload"][0] if message["type"] == "error" else message["payload"]["errors"][0]


async def test_trusted_documents_mode_runs_only_the_list(stack: Stack, tmp_path: Path) -> None:
    # Apollo's link hashes the document as it prints it: learn that text from a normal run.
    apollo_text = next(e["query"] for e in (await apollo(stack.url, "post", unique_query()))["exchanges"] if e["query"])
    manifest = tmp_path / "trusted.json"
    documents = [TRUSTED, TRUSTED_SUBSCRIPTION, apollo_text]
    manifest.write_text(json.dumps({sha256(document): document for document in documents}))
    async with serve_app(stack, trusted_documents=manifest) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            by_hash = await http.post("/graphql", json={"extensions": persisted(sha256(TRUSTED))})
            assert by_hash.status_code == 200 and "errors" not in by_hash.json()
            by_get = await http.get("/graphql", params={"extensions": json.dumps(persisted(sha256(TRUSTED)))})
            assert result(by_get.json()) == result(by_hash.json())
            by_text = await http.post("/graphql", json={"query": TRUSTED})
            assert result(by_text.json()) == result(by_hash.json())
            refused = [
                await http.post("/graphql", json={"query": "{ __typename }"}),
                await http.get("/graphql", params={"query": "{ __typename }"}),
                await http.post("/graphql", json={"extensions": persisted(sha256("{ __typename }"))}),
                # registering is not possible either
                await http.post("/graphql", json={"query": "{ __typename }",
                                                  "extensions": persisted(sha256("{ __typename }"))}),
            ]
            for response in refused:
                assert response.status_code == 400
                assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
                assert "trusted documents" in response.json()["errors"][0]["message"]
        # The WebSocket path too: a trusted subscription runs (and finds no signed-in viewer).
        ws_url = url.replace("http://", "ws://") + "/graphql"
        assert (await subscribe_once(ws_url, TRUSTED_SUBSCRIPTION))["extensions"]["code"] == "UNAUTHENTICATED"
        untrusted = await subscribe_once(ws_url, "subscription { liveFeed { id } }")
        assert untrusted["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
        run = await apollo(url, "get", apollo_text)
        assert [r["error"] for r in run["results"]] == [None, None]
        assert all(e["query"] is None and e["status"] == 200 for e in run["exchanges"])  # hash only, found
        other = await apollo(url, "post", unique_query())
        assert other["results"][0]["data"] is None
        assert {e["body"]["errors"][0]["extensions"]["code"] for e in other["exchanges"]} == {"PERSISTED_QUERY_NOT_IN_LIST"}


def test_a_bad_manifest_stops_start_up(stack: Stack, tmp_path: Path) -> None:
    manifest = tmp_path / "trusted.json"
    manifest.write_text(json.dumps({sha256("{ a }"): "{ b }"}))
    with pytest.raises(ConfigurationError, match="not the sha256"):
        PersistedQueries(stack.settings.model_copy(update={"trusted_documents": manifest}))
    manifest.write_text("[]")
    with pytest.raises(ConfigurationError, match="JSON object"):
        PersistedQueries(stack.settings.model_copy(update={"trusted_documents": manifest}))
    with pytest.raises(ConfigurationError, match="cannot read"):
        PersistedQueries(stack.settings.model_copy(update={"trusted_documents": tmp_path / "missing.json"}))
