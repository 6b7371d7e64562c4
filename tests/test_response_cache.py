"""The response cache of anonymous public queries (issue 15): hits before any GraphQL work,
and every change a buyer cares about (price, a sale that empties stock, a hidden product)
visible on the very next request -- in this process and in another API process, which hears
of it through Redis (on the embedded stack, without Redis, the second app shares this
process's invalidations)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import structlog
import uvicorn
from prometheus_client import REGISTRY
from strawberry.relay import GlobalID

from models.accounts.users import Role
from models.commerce.catalog import Product
from service.web.response_cache import Entry, Miss, ResponseCache
from tests.conftest import Stack, count_queries, eventually, free_port
from tests.factories import make_merchant, make_product, make_user, token_for

CATALOG = "{ products(first: 20) { edges { node { id title price { amount currency } stock merchant { id name } } } } }"
ONE = "query One($id: ID!) { product(id: $id) { id price { amount } stock status } }"
UPDATE = """mutation($input: UpdateProductInput!) { updateProduct(input: $input) { errors { code } product { id } } }"""
ORDER = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code } order { id } } }"""


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def graphql_operations() -> float:
    return sum(
        sample.value for family in REGISTRY.collect() if family.name == "kameng_graphql_requests"
        for sample in family.samples if sample.name.endswith("_total")
    )


class BoundRequest:
    """Marks everything the wrapped app does for a request, hits included, as a request's own,
    so that conftest's QueryCounter sees it (a hit never reaches the request-id middleware)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        structlog.contextvars.bind_contextvars(request_id="cache-probe")
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def second_api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """Another API on its own port and with its own response cache. With Redis, that cache
    hears this process's changes only through Redis, as another process's would."""
    from app import create_app

    app = create_app(stack.settings, shared_cache=stack.settings.redis_url is None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        BoundRequest(app), host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False,
    ))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        await serving


async def get(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None,
              **headers: str) -> httpx.Response:
    params = {"query": query, **({"variables": json.dumps(variables)} if variables else {})}
    response = await http.get("/graphql", params=params, headers=headers)
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response


def hit(response: httpx.Response) -> bool:
    return response.headers.get("x-kameng-cache") == "hit"


def node(response: httpx.Response, product_id: int) -> dict[str, Any] | None:
    for edge in response.json()["data"]["products"]["edges"]:
        if edge["node"]["id"] == gid("Product", product_id):
            return edge["node"]  # type: ignore[no-any-return]
    return None


async def warm(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    """Ask until the answer comes from the cache (a second API stores once subscribed)."""
    async def cached() -> httpx.Response | None:
        response = await get(http, query, variables)
        return response if hit(response) else None

    return await eventually(cached)  # type: ignore[no-any-return]


async def shop_with_product(keys: int = 1) -> tuple[str, Product]:
    owner = await make_user(Role.MERCHANT)
    product = await make_product(await make_merchant(owner), keys=keys, price="10.00")
    return await token_for(owner), product


async def change(http: httpx.AsyncClient, token: str, query: str, data: dict[str, Any]) -> None:
    response = await http.post("/graphql", json={"query": query, "variables": {"input": data}},
                               headers={"authorization": f"Bearer {token}"})
    payload = next(iter(response.json()["data"].values()))
    assert payload["errors"] == [], payload


async def test_a_hit_is_served_before_graphql_and_sql(http: httpx.AsyncClient, stack: Stack) -> None:
    _, product = await shop_with_product(keys=3)
    async with second_api(stack) as api:
        with count_queries() as first:
            miss = await get(api, CATALOG)
        assert not hit(miss) and first.count > 0  # the counter does see this app's queries
        cached = await warm(api, CATALOG)
        assert cached.content == miss.content and node(cached, product.id)["stock"] == 3  # type: ignore[index]
        operations, hits = graphql_operations(), metric("kameng_response_cache_total", outcome="hit")
        with count_queries() as counter:
            again = await get(api, CATALOG)
        assert hit(again) and again.content == miss.content
        assert counter.count == 0, counter.statements
        assert graphql_operations() == operations  # no GraphQL operation ran
        assert metric("kameng_response_cache_total", outcome="hit") == hits + 1
        assert again.headers["etag"] == cached.headers["etag"] and again.headers["cache-control"].startswith("public")
        revalidated = await api.get("/graphql", params={"query": CATALOG}, headers={"if-none-match": again.headers["etag"]})
        assert revalidated.status_code == 304 and hit(revalidated)
    exposed = (await http.get("/metrics")).text
    assert "kameng_response_cache_total" in exposed and "kameng_response_cache_invalidations_total" in exposed


async def test_price_sale_and_hiding_show_on_the_next_request(http: httpx.AsyncClient, stack: Stack) -> None:
    token, product = await shop_with_product(keys=1)
    variables = {"id": gid("Product", product.id)}
    buyer = await token_for(await make_user())
    async with second_api(stack) as other:
        apis = (http, other)
        for api in apis:
            assert node(await warm(api, CATALOG), product.id)["price"]["amount"] == "10.00"  # type: ignore[index]
            assert (await warm(api, ONE, variables)).json()["data"]["product"]["stock"] == 1

        remote = metric("kameng_response_cache_invalidations_total", origin="remote")
        await change(http, token, UPDATE, {"id": gid("Product", product.id), "price": "7.50"})
        if stack.settings.redis_url:  # the second API heard it through Redis, before the mutation answered
            assert metric("kameng_response_cache_invalidations_total", origin="remote") > remote
        for api in apis:
            listed = await get(api, CATALOG)
            assert not hit(listed) and node(listed, product.id)["price"]["amount"] == "7.50"  # type: ignore[index]
            assert (await get(api, ONE, variables)).json()["data"]["product"]["price"]["amount"] == "7.50"
            await warm(api, CATALOG)
            await warm(api, ONE, variables)

        # The last key goes to an order: sold out.
        await change(http, buyer, ORDER, {"productId": gid("Product", product.id), "quantity": 1,
                                         "idempotencyKey": uuid.uuid4().hex})
        for api in apis:
            assert node(await get(api, CATALOG), product.id)["stock"] == 0  # type: ignore[index]
            assert (await get(api, ONE, variables)).json()["data"]["product"]["stock"] == 0
            await warm(api, CATALOG)
            await warm(api, ONE, variables)

        await change(http, token, UPDATE, {"id": gid("Product", product.id), "status": "HIDDEN"})
        for api in apis:
            assert node(await get(api, CATALOG), product.id) is None
            assert (await get(api, ONE, variables)).json()["data"]["product"] is None


async def test_signed_in_and_personal_requests_are_never_served_or_stored(http: httpx.AsyncClient) -> None:
    _, product = await shop_with_product()
    buyer = await token_for(await make_user())
    marker = f"{{ products(first: 3) {{ edges {{ node {{ id }} }} }} m_{uuid.uuid4().hex[:8]}: __typename }}"
    signed = {"authorization": f"Bearer {buyer}"}
    for _ in range(2):  # a signed-in answer is not stored...
        assert not hit(await get(http, marker, **signed))
    assert not hit(await get(http, marker))
    await warm(http, marker)
    assert not hit(await get(http, marker, **signed))  # ...nor served from what anonymous callers stored
    personal = f"{{ products(first: 3) {{ edges {{ node {{ id }} }} }} viewer {{ id }} m_{uuid.uuid4().hex[:8]}: __typename }}"
    private = f"{{ product(id: \"{gid('Product', product.id)}\") {{ id buyerCount merchant {{ id balance {{ amount }} }} }} }}"
    uncacheable = metric("kameng_response_cache_total", outcome="uncacheable")
    for query in (personal, private):
        for _ in range(3):
            response = await http.get("/graphql", params={"query": query})
            assert response.status_code == 200 and not hit(response)
    # `viewer` is not even HTTP-public; the shop's balance is, as null, but is not on the
    # cache's allow-list: refused at store time, every time.
    assert metric("kameng_response_cache_total", outcome="uncacheable") == uncacheable + 3
    stored = metric("kameng_response_cache_total", outcome="stored")
    for _ in range(2):  # POST and a request with Origin take the ordinary path
        assert not hit(await http.post("/graphql", json={"query": marker}))
    assert metric("kameng_response_cache_total", outcome="stored") == stored


async def test_an_answer_computed_across_a_change_is_refused(stack: Stack) -> None:
    """Invalidate-before-store: a request that began before a change may hold the old data;
    the cache refuses to store it, and takes the next one."""
    cache = ResponseCache(stack.settings.model_copy(update={"response_cache_entries": 2}), local=False)
    cache.ready = True
    tags = frozenset({"Product:1", "list:Product"})

    def entry(body: bytes) -> Entry:
        return Entry(body, '"t"', "application/json", [], tags, float("inf"))

    early = cache.begin(("q", None, b"", "application/json"))
    cache.invalidate(["Product:1"])
    assert not cache.put(early, entry(b"old")) and cache.get(early.key) is None
    late = cache.begin(early.key)
    assert cache.put(late, entry(b"new")) and cache.get(late.key).body == b"new"  # type: ignore[union-attr]
    cache.invalidate(["list:Product"])
    assert cache.get(late.key) is None
    unrelated = Miss(("other", None, b"", "application/json"), cache.generation)
    cache.invalidate(["Product:2"])
    assert cache.put(unrelated, entry(b"x"))  # Product:2 is not among its tags
    for n in range(3):  # bounded: the oldest goes
        assert cache.put(Miss((f"k{n}", None, b"", "application/json"), cache.generation), entry(b"x"))
    assert len(cache) == 2
