"""Hostile clients (issue 10): documents that burn CPU, bodies without bounds, strings and IDs
that used to reach an internal error, outages, forwarded headers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from strawberry.relay import GlobalID

from kameng.security import AccessClaims, issue_access_token
from kameng.settings import get_settings
from models.accounts.users import Role
from service.cli import server_options
from tests.conftest import Client, Stack, count_queries, free_port
from tests.factories import make_merchant, make_product, make_user, token_for

HOSTILE = "{" + " viewer { id }" * 450 + " }"


def codes(body: dict[str, Any]) -> list[str]:
    return [(error.get("extensions") or {}).get("code", "") for error in body.get("errors") or []]


# -- documents


async def test_repeated_fields_are_refused_before_execution(client: Client) -> None:
    await client.register()
    assert len(HOSTILE.encode()) > 4000
    # What any document refused by validation costs (authentication): the baseline.
    with count_queries() as baseline:
        refused = (await client.post("{ viewer { noSuchField } }")).json()
    assert "data" not in refused or refused["data"] is None
    for document in (HOSTILE, HOSTILE + "\n# a comment that used to defeat the cache " + uuid.uuid4().hex):
        with count_queries() as queries:
            response = await client.post(document)
        body = response.json()
        assert response.status_code == 200 and body.get("data") is None, body
        assert codes(body) == ["QUERY_TOO_COMPLEX"], body
        assert "viewer" in body["errors"][0]["message"]
        assert queries.count == baseline.count, queries.statements  # nothing was executed
    # A light query still answers.
    light = await client.gql("{ viewer { id } }")
    assert light["viewer"]["id"]


async def test_repetition_through_fragments_counts_too(client: Client) -> None:
    inline = "{" + " ... on Query { viewer { id } }" * 12 + " }"
    body = (await client.post(inline)).json()
    assert codes(body) == ["QUERY_TOO_COMPLEX"], body
    # A few repetitions (a fragment and the field beside it) are ordinary and accepted.
    fine = "query { viewer { id } ...V } fragment V on Query { viewer { id } }"
    answer = (await client.post(fine)).json()
    assert answer["data"] == {"viewer": None} and "errors" not in answer


def test_comments_and_spacing_share_one_validation() -> None:
    from kameng.settings import Settings
    from schema import build_schema
    from schema.extensions import DocumentCache

    schema = build_schema(Settings())._schema
    cache = DocumentCache((), max_tokens=2000)
    plain = "query Light { viewer { id } }"
    noisy = "# hello " + uuid.uuid4().hex + "\nquery   Light {\n  viewer { id }  # again\n}"
    first = cache.errors(schema, plain, cache.document(plain), ())
    second = cache.errors(schema, noisy, cache.document(noisy), ())
    assert first == [] and second is first  # one validation for both texts
    other = "query Light { viewer { nickname } }"
    assert cache.errors(schema, other, cache.document(other), ()) is not first


async def test_unknown_fragment_is_a_validation_error(client: Client) -> None:
    body = (await client.post("{ ...Nope }")).json()
    assert body.get("data") is None
    assert body["errors"][0]["message"] == "Unknown fragment 'Nope'."
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 3}]


# -- request limits


async def raw_post(stack: Stack, head: bytes, body_parts: list[bytes]) -> tuple[int, bytes, int]:
    """POST /graphql over a plain socket: the head, then body parts until the server answers.
    Returns (status, response body, bytes of body sent)."""
    port = int(stack.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    try:
        writer.write(head)
        await writer.drain()
        for part in body_parts:
            writer.write(part)
            sent += len(part)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            with contextlib.suppress(TimeoutError):
                response = await asyncio.wait_for(reader.read(65536), 0.2)
                if response:
                    break
        else:
            response = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2], sent


async def test_a_25_mb_body_is_refused_from_its_content_length(stack: Stack) -> None:
    size = 25 * 1024 * 1024
    head = (b"POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(size).encode() + b"\r\n\r\n")
    status, body, sent = await raw_post(stack, head, [b" " * 65536])
    assert status == 413 and b"REQUEST_TOO_LARGE" in body
    assert sent == 65536  # answered without waiting for the other 25 MB


async def test_a_streamed_body_is_refused_once_it_passes_the_limit(stack: Stack) -> None:
    head = b"POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    chunk = 256 * 1024
    parts = [f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n" for _ in range(100)]  # 25 MB
    status, body, sent = await raw_post(stack, head, parts)
    assert status == 413 and b"REQUEST_TOO_LARGE" in body
    assert sent < 25 * 1024 * 1024 // 2  # refused once past the limit, not after the whole body


async def test_deep_json_is_a_400_json_error(http: httpx.AsyncClient) -> None:
    for body in (b"[" * 5000 + b"]" * 5000, b'{"query": "{ viewer { id } }", "variables": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001):
        response = await http.post("/graphql", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    # POST /events counts no depth (its decoder takes flat events only): still a JSON refusal.
    for body in (b"[" * 5000 + b"]" * 5000, b'{"events": [' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"]}",
                 b'{"events": [{"eventId": "abcdefgh1", "kind": "PAGE_VISIT", "clientTime": ' + b"[" * 60 + b"]" * 60
                 + b"}]}"):
        response = await http.post("/events", content=body, headers={"content-type": "application/json"})
        assert response.status_code in (400, 415), response.text
        assert response.json()["errors"][0]["code"] == "INVALID_INPUT"


async def test_large_variables_are_refused_before_execution(client: Client) -> None:
    limit = get_settings().max_variables_bytes
    ids = [str(GlobalID("Notification", str(i + 1))) for i in range(limit // 20)]
    body = (await client.post("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})).json()
    assert body.get("data") is None
    assert codes(body) == ["INVALID_INPUT"] and body["errors"][0]["extensions"]["field"] == "ids"


async def test_nodes_beyond_the_cap_are_refused(client: Client, stack: Stack) -> None:
    NODES_MAX = stack.settings.max_node_ids  # noqa: N806
    ids = [str(GlobalID("Product", str(i + 1))) for i in range(NODES_MAX + 1)]
    with count_queries() as queries:
        body = (await client.post("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})).json()
    assert codes(body) == ["INVALID_INPUT"] and body["errors"][0]["message"].startswith("Ask for at most")
    assert queries.count == 0
    fine = (await client.post("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids[:NODES_MAX]})).json()
    assert "errors" not in fine and len(fine["data"]["nodes"]) == NODES_MAX


# -- hostile strings, IDs and decimals

BAD_TEXT = ["a\x00b", "\ud800", "x\udfffy", "\x00"]
BAD_IDS = [str(GlobalID("Product", value)) for value in ("99999999999999999999", "9223372036854775808", "1.5",
                                                        "0x1", "", "-1", "0", "\u0661\u0662", " 1", "1_0")]
BAD_IDS += ["", "not base64!", "\x00", "\ud800"]
BAD_DECIMALS = ["1e30", "1e999999", "9" * 31, "\u0661\u0662", "NaN", "-Infinity", "1e-999999", "0.001", "\x00"]


async def hostile_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """(who, document, variables): representative operations, every hostile value class."""
    cases: list[tuple[str, str, dict[str, Any]]] = []
    login = "mutation($i: LoginInput!) { login(input: $i) { errors { code field } accessToken } }"
    register = "mutation($i: RegisterInput!) { register(input: $i) { errors { code field } accessToken } }"
    order = """mutation($i: CreateOrderInput!) { createOrder(input: $i) { errors { code field } order { id } } }"""
    lookup = "query($i: OrderLookupInput!) { orderLookup(input: $i) { id } }"
    claim = "mutation($i: ClaimCouponInput!) { claimCoupon(input: $i) { errors { code field } } }"
    feed = "query($t: String) { feed(kind: TOPIC, topic: $t, first: 2) { edges { cursor } } }"
    products = "query($f: ProductFilter) { products(filter: $f, first: 2) { edges { cursor } } }"
    product = "mutation($i: CreateProductInput!) { createProduct(input: $i) { errors { code field } product { id } } }"
    marks = "mutation($i: MarkNotificationsReadInput!) { markNotificationsRead(input: $i) { errors { code field } } }"
    for text in BAD_TEXT:
        cases += [
            ("anonymous", login, {"i": {"email": text, "password": "correct horse"}}),
            ("anonymous", login, {"i": {"email": "a@example.com", "password": text}}),
            ("anonymous", register, {"i": {"email": "b@example.com", "password": "correct horse", "nickname": text}}),
            ("buyer", order, {"i": {"productId": "{product}", "idempotencyKey": text}}),
            ("anonymous", lookup, {"i": {"orderNo": text, "password": "x"}}),
            ("buyer", claim, {"i": {"code": text}}),
            ("anonymous", feed, {"t": text}),
            ("anonymous", products, {"f": {"search": text}}),
            ("merchant", product, {"i": {"merchantId": "{merchant}", "title": text, "price": "1.00",
                                         "deliveryKind": "CARD_KEY"}}),
        ]
    for bad_id in BAD_IDS:
        cases += [
            ("buyer", order, {"i": {"productId": bad_id, "idempotencyKey": uuid.uuid4().hex}}),
            ("buyer", marks, {"i": {"ids": [bad_id]}}),
            ("buyer", "query($id: ID!) { node(id: $id) { id } }", {"id": bad_id}),
            ("anonymous", feed.replace("topic: $t", "productId: $t").replace("String", "ID"), {"t": bad_id}),
            ("merchant", product, {"i": {"merchantId": bad_id, "title": "Card", "price": "1.00",
                                         "deliveryKind": "CARD_KEY"}}),
        ]
    for decimal in BAD_DECIMALS:
        cases += [
            ("anonymous", products, {"f": {"minPrice": decimal}}),
            ("anonymous", products, {"f": {"maxPrice": decimal}}),
            ("merchant", product, {"i": {"merchantId": "{merchant}", "title": "Card", "price": decimal,
                                         "deliveryKind": "CARD_KEY"}}),
        ]
    # Literals as well as variables: the document itself carries the bad text.
    cases.append(("anonymous", 'mutation { login(input: {email: "a\\u0000b", password: "x"}) { errors { code } } }', {}))
    cases.append(("anonymous", 'query { feed(kind: TOPIC, topic: "\\u0000") { edges { cursor } } }', {}))
    return cases


def bad_text(value: Any) -> bool:
    if isinstance(value, dict):
        return any(bad_text(v) for v in value.values())
    if isinstance(value, list):
        return any(bad_text(v) for v in value)
    return isinstance(value, str) and any(ch == "\x00" or "\ud800" <= ch <= "\udfff" for ch in value)


async def post_ascii(client: Client, document: str, variables: dict[str, Any]) -> httpx.Response:
    """Like Client.post, with JSON escaped to ASCII: lone surrogates travel as \\ud800."""
    headers = {"x-forwarded-for": client.ip, "content-type": "application/json"}
    if client.token:
        headers["authorization"] = f"Bearer {client.token}"
    content = json.dumps({"query": document, "variables": variables})
    return await client.http.post("/graphql", content=content, headers=headers)


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return ids.get(value, value) if isinstance(value, str) else value


async def test_hostile_inputs_never_reach_an_internal_error(make_client) -> None:  # type: ignore[no-untyped-def]
    merchant_user = await make_user(Role.MERCHANT, "Merchant")
    merchant = await make_merchant(merchant_user)
    product = await make_product(merchant, keys=1)
    buyer = make_client()
    buyer.token = await token_for(await make_user())
    seller = make_client()
    seller.token = await token_for(merchant_user)
    clients = {"anonymous": make_client(), "buyer": buyer, "merchant": seller}
    ids = {"{product}": str(GlobalID("Product", str(product.id))), "{merchant}": str(GlobalID("Merchant", str(merchant.id)))}
    cases = await hostile_cases()
    invalid_text = 0
    for who, document, variables in cases:
        response = await post_ascii(clients[who], document, _fill(variables, ids))
        assert response.status_code != 500, (document, variables, response.text)
        body = response.json()
        assert "INTERNAL_SERVER_ERROR" not in codes(body), (document, variables, body)
        payload_codes = [e["code"] for field in (body.get("data") or {}).values() if isinstance(field, dict)
                         for e in field.get("errors") or []]
        if bad_text(variables) or "\\u0000" in document:
            assert "INVALID_INPUT" in codes(body), (document, variables, body)
            assert all(e["extensions"].get("field") for e in body["errors"]), body
            invalid_text += 1
        elif body.get("errors"):
            assert set(codes(body)) <= {"INVALID_INPUT", "BAD_USER_INPUT", ""}, (document, variables, body)
        else:
            assert set(payload_codes) <= {"INVALID_INPUT", "NOT_FOUND", "FORBIDDEN"}, (document, variables, body)
    assert len(cases) > 100 and invalid_text >= len(BAD_TEXT) * 9


async def test_global_ids_are_decoded_strictly() -> None:
    from resolvers.errors import UserFacingError
    from schema.base import decode_id

    assert decode_id(str(GlobalID("Order", "9223372036854775807")), "Order", "id") == 2**63 - 1
    for value in ("9223372036854775808", "1.5", "0x1", "", "0", "-1", "01", "\u0661\u0662", " 1", "1_0", "+1"):
        with pytest.raises(UserFacingError) as raised:
            decode_id(str(GlobalID("Order", value)), "Order", "orderId")
        assert raised.value.code.value == "INVALID_INPUT" and raised.value.field == "orderId"
    with pytest.raises(UserFacingError):
        decode_id(str(GlobalID("Product", "1")), "Order", "orderId")


# -- outages


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[str]:
    """A second server of the app in this process, in the current context, sharing the running
    runtime (no lifespan: the session's stack owns the runtime)."""
    from app import create_app

    port = free_port()
    config = uvicorn.Config(create_app(get_settings()), host="127.0.0.1", port=port, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@contextlib.contextmanager
def redis_down(stack: Stack) -> Iterator[None]:
    """The rate limiter pointed at a Redis nobody listens on (the real one keeps running)."""
    from kameng import runtime
    from kameng.ratelimit import RateLimiter

    rt = runtime.current()
    before = rt.limiter
    rt.limiter = RateLimiter(f"redis://127.0.0.1:{closed_port()}/0", stack.namespace)
    try:
        yield
    finally:
        rt.limiter = before


async def test_redis_down_answers_503_with_retry_after(stack: Stack, client: Client) -> None:
    login = "mutation($i: LoginInput!) { login(input: $i) { errors { code } accessToken } }"
    with redis_down(stack):
        response = await client.post(login, {"i": {"email": "a@example.com", "password": "correct horse"}})
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert codes(response.json()) == ["SERVICE_UNAVAILABLE"]


async def test_database_down_answers_503_with_retry_after(stack: Stack) -> None:
    """Authentication reads the session before GraphQL runs: with PostgreSQL unreachable that
    was a plain-text 500. A second server of the app is started in a context whose database
    connection points at a port nobody listens on (Tortoise keeps connections per context, so
    the session's stack and its background tasks are not affected)."""
    from tortoise import connections
    from tortoise.backends.asyncpg import AsyncpgDBClient

    user = await make_user()
    token = issue_access_token(get_settings().signing_secret(), AccessClaims(user.id, uuid.uuid4(), "BUYER"), 600)
    down = AsyncpgDBClient(connection_name="default", host="127.0.0.1", port=closed_port(), user="postgres",
                           password="", database="nowhere", minsize=1, maxsize=1)
    swapped = connections.set("default", down)
    try:
        async with serving() as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            response = await http.post("/graphql", json={"query": "{ viewer { id } }"},
                                       headers={"authorization": f"Bearer {token}"})
            anonymous = await http.post("/graphql", json={"query": "{ products(first: 1) { edges { cursor } } }"})
    finally:
        connections.reset(swapped)
    for answer in (response, anonymous):
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) > 0
        assert answer.headers["content-type"].startswith("application/json")
        assert "SERVICE_UNAVAILABLE" in codes(answer.json())


# -- forwarded headers


async def test_forwarded_for_from_loopback_is_ignored_by_default(stack: Stack) -> None:
    seen: list[str] = []

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def client_address(options: dict[str, Any]) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(probe, host="127.0.0.1", port=port, lifespan="off", **options))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        try:
            async with httpx.AsyncClient() as http:
                await http.get(f"http://127.0.0.1:{port}/", headers={"x-forwarded-for": "203.0.113.9"})
        finally:
            server.should_exit = True
            await task
        return seen[-1]

    default = server_options(get_settings().model_copy(update={"forwarded_allow_ips": ""}))
    assert await client_address(default) == "127.0.0.1"
    trusting = server_options(get_settings().model_copy(update={"forwarded_allow_ips": "127.0.0.1"}))
    assert await client_address(trusting) == "203.0.113.9"


async def test_query_budget_store_down_answers_503(stack: Stack, client: Client) -> None:
    """The query-cost budget (schema/cost.py, kept in Redis) unreachable: the client is told
    to retry (503), not given a masked internal error, and not let through unmetered."""
    from redis.asyncio import Redis

    from kameng import runtime

    rt = runtime.current()
    before_redis, before_buckets = rt.redis, rt.local.pop("query_budget", None)
    down = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    rt.redis = down  # the budget's buckets are rebuilt on the process's Redis handle
    try:
        response = await client.post("{ categories { name } }")
    finally:
        rt.redis = before_redis
        rt.local.pop("query_budget", None)
        if before_buckets is not None:
            rt.local["query_budget"] = before_buckets
        await down.aclose()
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert codes(response.json()) == ["SERVICE_UNAVAILABLE"]


async def test_an_error_raised_by_an_extension_hook_is_masked_too(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a schema extension's own hook (here the query budget's) ends the operation
    before the masking extension sees it: the view masks it, so nothing internal leaks."""
    from kameng.budget import TokenBuckets

    async def broken(self: TokenBuckets, key: str, cost: int) -> None:
        raise RuntimeError("internal detail at 10.1.2.3")

    monkeypatch.setattr(TokenBuckets, "take", broken)
    response = await client.post("{ categories { name } }")
    assert response.status_code == 200
    body = response.json()
    assert codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "10.1.2.3" not in response.text and body["errors"][0]["extensions"]["requestId"]
