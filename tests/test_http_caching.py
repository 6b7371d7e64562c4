"""HTTP caching: anonymous GET queries of public data can be kept by a CDN or a browser and
revalidated; nothing personal, nothing sent with a token, no POST and no error ever is."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx

from tests.conftest import Client, Stack

PUBLIC = "{ categories { name } creatorLeaderboard(first: 3) { rank } }"


def _vary(response: httpx.Response) -> set[str]:
    return {name.strip() for name in response.headers.get("vary", "").split(",")}


async def test_anonymous_public_get_is_cacheable_and_revalidates(http: httpx.AsyncClient, stack: Stack) -> None:
    first = await http.get("/graphql", params={"query": PUBLIC})
    assert first.status_code == 200 and "errors" not in first.json()
    assert first.headers["cache-control"] == f"public, max-age={stack.settings.http_cache_max_age}"
    assert {"Authorization", "Accept", "Origin"} <= _vary(first)
    tag = first.headers["etag"]
    again = await http.get("/graphql", params={"query": PUBLIC}, headers={"if-none-match": tag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag and again.headers["cache-control"].startswith("public")
    weak = await http.get("/graphql", params={"query": PUBLIC}, headers={"if-none-match": f'"other", W/{tag}'})
    assert weak.status_code == 304
    stale = await http.get("/graphql", params={"query": PUBLIC}, headers={"if-none-match": '"something-else"'})
    assert stale.status_code == 200 and stale.json() == first.json()
    # Another media type is another representation: its own tag.
    spec = await http.get("/graphql", params={"query": PUBLIC}, headers={"accept": "application/graphql-response+json"})
    assert spec.status_code == 200 and spec.headers["etag"] != tag


async def test_persisted_get_is_cacheable_too(http: httpx.AsyncClient) -> None:
    query = f"{{ categories {{ name }} marker_{uuid.uuid4().hex[:8]}: __typename }}"
    digest = hashlib.sha256(query.encode()).hexdigest()
    extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": digest}})
    registered = await http.post("/graphql", json={"query": query, "extensions": json.loads(extensions)})
    assert registered.headers["cache-control"] == "private, no-store"  # a POST
    response = await http.get("/graphql", params={"extensions": extensions})
    assert response.status_code == 200 and "errors" not in response.json()
    assert response.headers["cache-control"].startswith("public") and response.headers["etag"]
    revalidated = await http.get("/graphql", params={"extensions": extensions},
                                 headers={"if-none-match": response.headers["etag"]})
    assert revalidated.status_code == 304


async def test_signed_in_requests_are_never_cacheable(client: Client) -> None:
    await client.register()
    headers = {"authorization": f"Bearer {client.token}"}
    response = await client.http.get("/graphql", params={"query": PUBLIC}, headers=headers)
    assert response.status_code == 200 and "errors" not in response.json()
    assert response.headers["cache-control"] == "private, no-store" and "etag" not in response.headers
    assert "Authorization" in _vary(response)
    # Even with a tag taken from the anonymous answer, a signed-in request gets the full answer.
    tag = (await client.http.get("/graphql", params={"query": PUBLIC})).headers["etag"]
    revalidated = await client.http.get("/graphql", params={"query": PUBLIC}, headers={**headers, "if-none-match": tag})
    assert revalidated.status_code == 200


async def test_posts_errors_and_personal_fields_are_not_cacheable(http: httpx.AsyncClient) -> None:
    post = await http.post("/graphql", json={"query": PUBLIC})
    assert post.headers["cache-control"] == "private, no-store" and "etag" not in post.headers
    errors = await http.get("/graphql", params={"query": "{ categories { name } noSuchField }"})
    assert errors.headers["cache-control"] == "private, no-store"
    lookup = ('{ orderLookup(input: {orderNo: "K0000", password: "secret-pass"}) { id } }')
    personal = [
        "{ viewer { id } }",
        lookup,
        "{ categories { name } ...Me } fragment Me on Query { viewer { id } }",
        "{ ... on Query { viewer { id } } }",
    ]
    for query in personal:
        response = await http.get("/graphql", params={"query": query})
        assert response.headers["cache-control"] == "private, no-store", query
        assert "etag" not in response.headers, query


async def test_a_public_answer_carries_no_client_budget(http: httpx.AsyncClient) -> None:
    """A shared cache gives one body to every client: the query's cost is in it, this
    client's remaining budget is not (else every request would change the body and ETag)."""
    first = await http.get("/graphql", params={"query": PUBLIC})
    second = await http.get("/graphql", params={"query": PUBLIC})
    cost = first.json()["extensions"]["cost"]
    assert cost["requested"] > 0 and "maximum" in cost
    assert "remaining" not in cost and "resetAt" not in cost
    assert second.headers["etag"] == first.headers["etag"]
    posted = (await http.post("/graphql", json={"query": PUBLIC})).json()
    assert "remaining" in posted["extensions"]["cost"]
