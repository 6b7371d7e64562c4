"""The explorer at GET /graphql: served from the app's own assets (works offline), runs
queries over HTTP and subscriptions over the WebSocket, and is off in production unless
enabled."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, expect
from starlette.responses import PlainTextResponse
from strawberry.relay import GlobalID

from kameng.settings import Settings
from service.web.explorer import ExplorerGate
from service.web.pages import STATIC_DIR
from tests.browser import Tab, chromium, tab
from tests.conftest import Stack
from tests.factories import fund, make_product, make_user, token_for

CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code } order { id } } }"""
PAY = """mutation($input: PayOrderInput!) { payOrder(input: $input) { errors { code } } }"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


async def open_explorer(browser: Browser, stack: Stack) -> AsyncIterator[Tab]:
    async with tab(browser, stack.url) as opened:
        await opened.page.goto(stack.url + "/graphql")
        await expect(opened.page.locator(".graphiql-container")).to_be_visible()
        yield opened


async def set_editor(opened: Tab, pane: str, text: str) -> None:
    """Fill the Variables or Headers pane (CodeMirror 5 keeps its instance on the element)."""
    await opened.page.get_by_role("button", name=pane, exact=True).click()
    await opened.page.evaluate(
        """([pane, text]) => {
            // GraphiQL renders both panes, Variables first, and hides the other one.
            const editors = document.querySelectorAll('.graphiql-editor-tool .CodeMirror');
            editors[pane === 'Variables' ? 0 : 1].CodeMirror.setValue(text);
        }""",
        [pane, text],
    )


async def test_a_browser_gets_the_explorer_page_and_its_assets(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert "/static/dist/explorer.js" in assets and "/static/dist/explorer.css" in assets
    for asset in assets:
        assert (await http.get(asset)).status_code == 200, asset
    assert "http" not in " ".join(re.findall(r'(?:src|href)="([^"]+)"', page.text))


async def test_graphql_requests_from_a_browser_still_reach_the_api(http: httpx.AsyncClient) -> None:
    html = {"accept": "text/html,*/*"}
    answer = await http.get("/graphql", params={"query": "{ __typename }"}, headers=html)
    assert answer.json() == {"data": {"__typename": "Query"}}
    posted = await http.post("/graphql", json={"query": "{ __typename }"}, headers=html)
    assert posted.json() == {"data": {"__typename": "Query"}}
    # A plain GET that does not ask for HTML is the API's, as before.
    assert "graphiql" not in (await http.get("/graphql")).text.lower()


def test_explorer_is_on_in_development_and_off_in_production_unless_enabled() -> None:
    production = {"env": "production", "database_url": "postgres://u@h/db"}
    assert Settings().explorer_enabled is True
    assert Settings(explorer=False).explorer_enabled is False
    assert Settings(**production).explorer_enabled is False
    assert Settings(**production, explorer=True).explorer_enabled is True


async def test_a_disabled_explorer_hands_every_request_to_the_api() -> None:
    api = PlainTextResponse("the API")
    html = {"accept": "text/html"}
    for enabled, expected in ((False, "the API"), (True, "Kameng GraphQL explorer")):
        transport = httpx.ASGITransport(app=ExplorerGate(api, enabled=enabled))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert expected in (await client.get("/graphql", headers=html)).text
            # Persisted-query GETs carry only `extensions`: never the explorer.
            extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}})
            assert (await client.get("/graphql", params={"extensions": extensions}, headers=html)).text == "the API"


def test_the_shipped_bundle_references_no_other_origin() -> None:
    for name in ("explorer.js", "explorer.css", "track.js", "live.js"):
        text = (STATIC_DIR / "dist" / name).read_text()
        # Only XML namespaces and links in messages; nothing the code would load.
        loaded = re.findall(r"""(?:import\(|fetch\(|url\(|src=)["']?(https?://[^"')]+)""", text)
        assert loaded == [], (name, loaded)


async def test_explorer_works_offline_and_runs_a_query(browser: Browser, stack: Stack) -> None:
    product = await make_product(price="7.50")
    async for opened in open_explorer(browser, stack):
        page = opened.page
        await expect(page.get_by_text("Authorization", exact=False).first).to_be_visible()
        await page.locator(".graphiql-execute-button").click()
        result = page.locator(".result-window")
        await expect(result).to_contain_text(product.title)
        await expect(result).to_contain_text('"amount": "7.50"')
        await opened.screenshot("explorer-query")
        opened.assert_stayed_home()


async def test_explorer_subscription_follows_an_order_over_the_websocket(
    browser: Browser, stack: Stack, make_client
) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(keys=1, price="3.00")
    buyer = await make_user()
    await fund(buyer, "10.00")
    client = make_client()
    client.token = await token_for(buyer)
    created = await client.gql(CREATE, {"input": {
        "productId": str(GlobalID("Product", str(product.id))), "idempotencyKey": uuid.uuid4().hex}})
    order_id = created["createOrder"]["order"]["id"]
    async for opened in open_explorer(browser, stack):
        page = opened.page
        await page.get_by_role("tab", name="TrackOrder").click()
        await set_editor(opened, "Variables", json.dumps({"orderId": order_id}))
        await set_editor(opened, "Headers", json.dumps({"Authorization": f"Bearer {client.token}"}))
        await page.locator(".graphiql-execute-button").click()
        result = page.locator(".result-window")
        await expect(result).to_contain_text('"status": "PENDING_PAYMENT"')
        paid = await client.gql(PAY, {"input": {"orderId": order_id, "method": "WALLET"}})
        assert paid["payOrder"]["errors"] == []
        await expect(result).to_contain_text('"status": "DELIVERED"', timeout=20_000)
        await opened.screenshot("explorer-subscription")
        assert any(url.endswith("/graphql") for url in opened.websockets)
        opened.assert_stayed_home()
