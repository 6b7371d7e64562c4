"""CORS: a browser page on an allowed origin may call the API (credentials included) and open
its WebSocket; any other origin is refused. Development allows local origins; production
allows only the configured list."""

from __future__ import annotations

import httpx
import pytest
import websockets

from kameng.settings import Settings
from service.web.cors import OriginPolicy
from tests.app_server import serve_app
from tests.conftest import Stack

PREFLIGHT = {"access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type"}


async def preflight(http: httpx.AsyncClient, origin: str) -> httpx.Response:
    return await http.options("/graphql", headers={"origin": origin, **PREFLIGHT})


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:3000", "http://localhost"])
async def test_development_allows_local_origins(http: httpx.AsyncClient, origin: str) -> None:
    response = await preflight(http, origin)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin  # echoed, never "*" with credentials
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    call = await http.post("/graphql", json={"query": "{ __typename }"}, headers={"origin": origin})
    assert call.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in call.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.nip.io:80"])
async def test_other_origins_are_refused(http: httpx.AsyncClient, origin: str) -> None:
    response = await preflight(http, origin)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    call = await http.post("/graphql", json={"query": "{ __typename }"}, headers={"origin": origin})
    assert "access-control-allow-origin" not in call.headers


async def test_a_configured_list_is_all_that_is_allowed(stack: Stack) -> None:
    async with serve_app(stack, env="production", cors_origins="https://shop.example, https://m.shop.example") as url:
        async with httpx.AsyncClient(base_url=url) as http:
            allowed = await preflight(http, "https://m.shop.example")
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == "https://m.shop.example"
            assert allowed.headers["access-control-allow-credentials"] == "true"
            assert (await preflight(http, "http://localhost:5173")).status_code == 400
            assert (await preflight(http, "https://shop.example.evil")).status_code == 400


async def test_websocket_handshakes_follow_the_same_list(stack: Stack) -> None:
    async with websockets.connect(stack.ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                  origin="http://localhost:5173") as ws:  # type: ignore[arg-type]
        await ws.send('{"type": "connection_init"}')
        assert "connection_ack" in await ws.recv()
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(stack.ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                      origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


def test_production_allows_no_origin_unless_configured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    production = Settings(env="production", database_url="postgres://u@h/db", data_dir=tmp_path)
    assert OriginPolicy.of(production).middleware() is None
    assert not OriginPolicy.of(production).allows("http://localhost:3000")
    anyone = OriginPolicy.of(production.model_copy(update={"cors_origins": "*"}))
    middleware = anyone.middleware()
    assert middleware is not None and middleware.kwargs["allow_credentials"] is False  # never "*" with credentials
