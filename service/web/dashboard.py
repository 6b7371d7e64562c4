"""/dashboard: the staff (ADMIN) retention dashboard, the report's charts in a browser.

The page is static and holds no data: its script signs in (the `login` mutation, the token
kept in the tab as on the live pages), reads the numbers through `retentionAnalytics` and the
charts from GET /dashboard/charts, which authenticates the same bearer token and answers the
SVG of every chart section (service/report.py, the very code `kameng report` draws with) as
JSON. Anyone else gets 401 / 403 and nothing drawn. Served with the live pages (`live_pages`).
"""

from __future__ import annotations

import asyncio
from datetime import date

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from resolvers.accounts.auth import ANONYMOUS, authenticate
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.lifecycle import analytics
from service import report
from service.web.pages import html_page
from service.web.sessions import bearer

_STATUS = {ErrorCode.UNAUTHENTICATED: 401, ErrorCode.FORBIDDEN: 403}


async def dashboard_page(_: Request) -> Response:
    return html_page("dashboard.html")


def _day(request: Request, name: str) -> date | None:
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserFacingError(ErrorCode.INVALID_INPUT, f"{name}: expected YYYY-MM-DD.", name) from None


async def dashboard_charts(request: Request) -> Response:
    """Every chart section's SVG, for an ADMIN's bearer token."""
    try:
        token = bearer(request.headers.get("authorization"))
        actor = ANONYMOUS if token is None else await authenticate(
            token, ip=request.client.host if request.client else "", user_agent=request.headers.get("user-agent", ""))
        computed = await analytics.retention(actor, _day(request, "since"), _day(request, "until"))
    except UserFacingError as error:
        body = {"error": {"code": error.code.value, "message": error.message, "field": error.field}}
        return JSONResponse(body, status_code=_STATUS.get(error.code, 400), headers={"Cache-Control": "no-store"})
    # Drawing is CPU work: off the event loop (figures are per call, no pyplot state is shared).
    charts = await asyncio.to_thread(lambda: [
        {"name": s.name, "title": s.title, "svg": report.svg(s.name, computed)} for s in report.CHARTS.values()])
    return JSONResponse({"since": computed.start.isoformat(), "until": computed.end.isoformat(), "charts": charts},
                        headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    return [Route("/dashboard", dashboard_page), Route("/dashboard/charts", dashboard_charts)]
