"""The live pages in headless Chromium: /orders/track follows an order from payment to its
card keys (signed-in buyer and guest), /live shows new posts, followed comments and replies
as they happen. Each page must reach only the test server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from strawberry.relay import GlobalID

from kameng import runtime
from models.commerce.orders import Order
from models.commerce.payments import Payment
from subscriptions import topics
from tests.browser import chromium, tab
from tests.conftest import Client, Stack, eventually
from tests.factories import add_keys, fund, make_product, make_user, token_for
from tests.test_payments import callback_params, send_callback, signed

CREATE_ORDER = """mutation($input: CreateOrderInput!) { createOrder(input: $input) {
  errors { code } order { id orderNo } } }"""
PAY = """mutation($input: PayOrderInput!) { payOrder(input: $input) { errors { code } payment { id } } }"""
CREATE_POST = """mutation($input: CreatePostInput!) { createPost(input: $input) { errors { code } post { id } } }"""
ADD_COMMENT = """mutation($input: AddCommentInput!) { addComment(input: $input) { errors { code } comment { id } } }"""
PASSWORD = "correct horse battery"  # every factory user's
STEPS = ["PENDING_PAYMENT", "PAID", "DELIVERING", "DELIVERED"]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


async def sign_in(page: Page, email: str) -> None:
    await page.locator("#signin input[name=email]").fill(email)
    await page.locator("#signin input[name=password]").fill(PASSWORD)
    await page.locator("#signin button[type=submit]").click()
    await expect(page.get_by_test_id("signed-in")).to_be_visible()


async def signed_in_client(make_client, balance: str | None = None) -> tuple[Client, Any]:  # type: ignore[no-untyped-def]
    user = await make_user()
    if balance:
        await fund(user, balance)
    client = make_client()
    client.token = await token_for(user)
    return client, user


def listening(topic: str) -> int:
    """Subscribers of a bus topic in this (the test server's) process. Once a page's
    subscription is registered here, every later event reaches it (EventBus.subscribe)."""
    return len(runtime.bus()._listeners.get(topic, ()))


async def test_buyer_watches_the_order_until_its_card_keys_show(browser: Browser, stack: Stack, make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(price="4.00")
    [secret] = await add_keys(product, 1)
    buyer, user = await signed_in_client(make_client, balance="10.00")
    order = (await buyer.gql(CREATE_ORDER, {"input": {
        "productId": gid("Product", product.id), "idempotencyKey": uuid.uuid4().hex}}))["createOrder"]["order"]
    async with tab(browser, stack.url) as opened:
        page = opened.page
        await page.goto(stack.url + "/orders/track")
        await sign_in(page, user.email)
        await page.get_by_role("button", name=f"Track {order['orderNo']}").click()
        await expect(page.locator("#status")).to_have_text("Waiting for payment")
        await expect(page.locator("#order-title")).to_contain_text(product.title)
        await opened.screenshot("track-buyer-pending")

        paid = (await buyer.gql(PAY, {"input": {"orderId": order["id"], "method": "WALLET"}}))["payOrder"]
        assert paid["errors"] == []
        await expect(page.locator("#tracking")).to_have_attribute("data-status", "DELIVERED", timeout=20_000)
        await expect(page.locator("#card-keys code.secret")).to_have_text([secret])
        await expect(page.locator("#events li")).to_have_count(4)
        assert await page.locator("#events li").evaluate_all("items => items.map(li => li.dataset.status)") == STEPS
        await expect(page.locator("#steps li.done")).to_have_count(3)
        await opened.screenshot("track-buyer-delivered")
        opened.assert_stayed_home()


async def test_guest_tracks_with_order_number_and_password(browser: Browser, stack: Stack, make_client, http) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(price="6.00")
    [secret] = await add_keys(product, 1)
    guest = make_client()
    order = (await guest.gql(CREATE_ORDER, {"input": {
        "productId": gid("Product", product.id), "idempotencyKey": uuid.uuid4().hex,
        "contactEmail": "guest@example.com", "queryPassword": "open sesame"}}))["createOrder"]["order"]
    async with tab(browser, stack.url) as opened:
        page = opened.page
        await page.goto(stack.url + "/orders/track")
        await page.locator("#order-no").fill(order["orderNo"])
        await page.locator("#order-password").fill("not the password")
        await page.get_by_role("button", name="Track", exact=True).click()
        await expect(page.locator("#problem")).to_contain_text("No order matches")
        await page.locator("#order-password").fill("open sesame")
        await page.get_by_role("button", name="Track", exact=True).click()
        await expect(page.locator("#status")).to_have_text("Waiting for payment")
        await expect(page.locator("#problem")).to_have_text("")

        paying = (await guest.gql(PAY, {"input": {"orderId": order["id"], "method": "EXTERNAL",
                                                  "orderNo": order["orderNo"], "queryPassword": "open sesame"}}))["payOrder"]
        assert paying["errors"] == []
        payment = await Payment.get(id=int(GlobalID.from_id(paying["payment"]["id"]).node_id))
        model = await Order.get(order_no=order["orderNo"])
        key = stack.settings.kpay_secret.get_secret_value()  # type: ignore[union-attr]
        assert (await send_callback(http, signed(callback_params(payment, model), key))).status_code == 200
        await expect(page.locator("#tracking")).to_have_attribute("data-status", "DELIVERED", timeout=20_000)
        await expect(page.locator("#card-keys code.secret")).to_have_text([secret])
        assert await page.locator("#events li").evaluate_all("items => items.map(li => li.dataset.status)") == STEPS
        await opened.screenshot("track-guest-delivered")
        opened.assert_stayed_home()


async def test_live_feed_shows_posts_comments_and_replies_as_they_happen(browser: Browser, stack: Stack, make_client) -> None:  # type: ignore[no-untyped-def]
    author, _ = await signed_in_client(make_client)
    reader, reader_user = await signed_in_client(make_client)
    marker = uuid.uuid4().hex[:8]
    mine = await reader.gql(CREATE_POST, {"input": {"kind": "QUESTION", "title": f"Reader asks {marker}", "body": "Which card?"}})
    my_post = mine["createPost"]["post"]["id"]
    async with tab(browser, stack.url) as opened:
        page = opened.page
        feed_before, replies_before = listening(topics.LIVE_POSTS), listening(topics.replies(reader_user.id))
        await page.goto(stack.url + "/live")
        await sign_in(page, reader_user.email)
        await expect(page.locator("#replies-box")).to_be_visible()
        await expect(page.locator(f"article[data-post='{my_post}']")).to_be_visible()  # the latest page
        await eventually(lambda: listening(topics.LIVE_POSTS) > feed_before and listening(topics.replies(reader_user.id)) > replies_before)

        title = f"Fresh guide {marker}"
        created = await author.gql(CREATE_POST, {"input": {"kind": "GUIDE", "title": title, "body": "Step one: *relax*."}})
        post_id = created["createPost"]["post"]["id"]
        card = page.locator(f"article[data-post='{post_id}']")
        await expect(card).to_contain_text(title)
        await expect(card).to_have_class("post fresh")
        await expect(page.locator("#feed article").first).to_have_attribute("data-post", post_id)

        post_pk = int(GlobalID.from_id(post_id).node_id)
        await card.get_by_role("button", name="Follow comments").click()
        await eventually(lambda: listening(topics.post_comments(post_pk)) > 0)
        said = await reader.gql(ADD_COMMENT, {"input": {"postId": post_id, "body": f"Thanks {marker}"}})
        assert said["addComment"]["errors"] == []
        await expect(card.locator("ul.comments li")).to_contain_text([f"Thanks {marker}"])

        replied = await author.gql(ADD_COMMENT, {"input": {"postId": my_post, "body": f"The blue one {marker}"}})
        assert replied["addComment"]["errors"] == []
        await expect(page.locator("#replies li")).to_contain_text([f"The blue one {marker}"])
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        await opened.screenshot("live-feed")
        opened.assert_stayed_home()
