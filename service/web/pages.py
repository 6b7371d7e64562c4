"""The pages the app serves to browsers: the live pages and their shipped assets.

Every script, stylesheet and font comes from `service/web/static` (bundled at build time from
npm, see `service/web/frontend/`), and the Content-Security-Policy keeps it that way: a page
may load nothing and connect nowhere but this origin (HTTP and its WebSocket).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from kameng.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"

# 'unsafe-inline' styles: GraphiQL and CodeMirror set style attributes. Scripts stay 'self' only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@cache
def _html(name: str) -> str:
    return (STATIC_DIR / name).read_text()


def html_page(name: str) -> Response:
    return HTMLResponse(
        _html(name),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


async def track_order(_: Request) -> Response:
    return html_page("track.html")


async def live_feed(_: Request) -> Response:
    return html_page("live.html")


def routes(settings: Settings) -> list[BaseRoute]:
    """The static assets (when anything uses them) and the live pages, as the settings say."""
    found: list[BaseRoute] = []
    if settings.live_pages:
        found += [Route("/orders/track", track_order), Route("/live", live_feed)]
    if settings.live_pages or settings.explorer_enabled:
        found.append(Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"))
    return found
