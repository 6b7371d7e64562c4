"""The explorer: GraphiQL for a browser that opens GET /graphql, everything else to the API.

The page and its bundle are the app's own (`service/web/static`): it works offline and loads
nothing from a CDN. On by default in development, off in production unless
`KAMENG_EXPLORER=true`.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from service.web.pages import html_page

# Any of these in the query string makes a GET a GraphQL request (persisted queries may send
# only `extensions`), which the API answers even when the client also accepts HTML.
_REQUEST_PARAMS = frozenset({"query", "extensions", "documentId", "variables", "operationName"})


def wants_explorer(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    accept = b",".join(value for name, value in scope["headers"] if name == b"accept").decode("latin-1")
    if "text/html" not in accept.lower():
        return False
    params = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return not _REQUEST_PARAMS.intersection(params)


class ExplorerGate:
    """Routes a browser's plain GET of the endpoint to the explorer page, and all else to `api`."""

    def __init__(self, api: ASGIApp, *, enabled: bool) -> None:
        self.api = api
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.enabled and wants_explorer(scope):
            await html_page("explorer.html")(scope, receive, send)
            return
        await self.api(scope, receive, send)
