"""Headless Chromium for the page tests: Debian's `chromium`, driven by Playwright's Python
package (its bundled browsers are never downloaded), confined to the test server.

Every request a page makes is intercepted: one to any other origin is aborted and recorded,
so a test can assert that a page works offline. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Tab:
    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_stayed_home(self) -> None:
        assert self.requests, "the page made no request at all"
        assert self.elsewhere == [], f"requests left the test server: {self.elsewhere}"
        ws_origin = self.origin.replace("http://", "ws://")
        assert all(url.startswith(ws_origin) for url in self.websockets), self.websockets
        assert self.errors == [], self.errors


@contextlib.asynccontextmanager
async def tab(browser: Browser, origin: str) -> AsyncIterator[Tab]:
    context = await browser.new_context(viewport={"width": 1200, "height": 860})
    page = await context.new_page()
    opened = Tab(page, origin)

    async def confine(route: Route) -> None:
        url = route.request.url
        opened.requests.append(url)
        if url.startswith(origin + "/") or url.startswith("data:"):
            await route.continue_()
        else:
            opened.elsewhere.append(url)
            await route.abort()

    await context.route("**/*", confine)
    page.on("websocket", lambda ws: opened.websockets.append(ws.url))
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    try:
        yield opened
    finally:
        await context.close()
