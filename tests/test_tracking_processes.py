"""Live order tracking when the API and the worker are separate processes on PostgreSQL and
Redis: the buyer sees PAID → DELIVERING → DELIVERED in order; another user is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import LOCAL_PG, LOCAL_REDIS, Stack, drop_redis_namespace, free_port, new_namespace, postgres_database, reachable
from tests.test_community_realtime import ROOT, _env, _gql, _stop, _wait_ready
from tests.test_subscriptions import connect, recv

LOGIN = "mutation($input: LoginInput!) { login(input: $input) { errors { code } accessToken } }"
REGISTER = "mutation($input: RegisterInput!) { register(input: $input) { errors { code } accessToken } }"
PRODUCTS = '{ products(first: 10, filter: {deliveryKind: CARD_KEY}) { edges { node { id title } } } }'
CREATE = "mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code } order { id } } }"
PAY = "mutation($input: PayOrderInput!) { payOrder(input: $input) { errors { code } } }"
TRACK = "subscription($id: ID!) { orderStatusChanged(orderId: $id) { status note } }"


@pytest.mark.skipif(
    not (reachable(LOCAL_PG, 5432) and reachable(LOCAL_REDIS, 6379)), reason="needs PostgreSQL and Redis"
)
async def test_tracking_across_api_and_worker_processes(tmp_path: Path) -> None:
    namespace = new_namespace()
    try:
        async with postgres_database(LOCAL_PG, namespace) as dsn:
            env = _env(dsn, namespace, tmp_path)
            for command in (["migrate"], ["seed", "--demo"]):
                done = subprocess.run([sys.executable, "-m", "service", *command], env=env, cwd=ROOT,
                                      capture_output=True, text=True, timeout=300)
                assert done.returncode == 0, done.stderr[-3000:]
            buyer_line = next(line for line in done.stdout.splitlines() if "buyer@" in line)
            _, email, password = buyer_line.split()
            port = free_port()
            log = tmp_path / "processes.log"
            processes = [
                subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=log.open("ab")),
                subprocess.Popen([sys.executable, "-m", "service", "worker"], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=log.open("ab")),
            ]
            try:
                await _track(f"http://127.0.0.1:{port}", namespace, processes[0], email, password)
            except BaseException:
                print(log.read_text()[-5000:])
                raise
            finally:
                _stop(processes)
    finally:
        await drop_redis_namespace(LOCAL_REDIS, namespace)


async def _track(url: str, namespace: str, server: subprocess.Popen[bytes], email: str, password: str) -> None:
    await _wait_ready(url, server)
    stack = Stack(settings=None, url=url, namespace=namespace)  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        token = (await _gql(http, LOGIN, {"input": {"email": email, "password": password}}))["login"]["accessToken"]
        product = (await _gql(http, PRODUCTS, {}))["products"]["edges"][0]["node"]["id"]
        order = (await _gql(http, CREATE, {"input": {"productId": product, "idempotencyKey": uuid.uuid4().hex}},
                            token))["createOrder"]["order"]["id"]
        stranger = (await _gql(http, REGISTER, {"input": {
            "email": f"{uuid.uuid4().hex[:10]}@example.com", "password": "correct horse battery",
            "nickname": "Stranger"}}))["register"]["accessToken"]

        async with await connect(stack, "graphql-transport-ws", stranger) as ws:
            assert (await recv(ws))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": TRACK, "variables": {"id": order}}}))
            refused = await recv(ws)
            errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
            assert errors[0]["extensions"]["code"] == "FORBIDDEN"

        async with await connect(stack, "graphql-transport-ws", token) as ws:
            assert (await recv(ws))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": TRACK, "variables": {"id": order}}}))
            assert (await recv(ws))["payload"]["data"]["orderStatusChanged"]["status"] == "PENDING_PAYMENT"
            paid = (await _gql(http, PAY, {"input": {"orderId": order, "method": "WALLET"}}, token))["payOrder"]
            assert paid["errors"] == []
            seen = [(await recv(ws, timeout=15))["payload"]["data"]["orderStatusChanged"]["status"] for _ in range(3)]
            assert seen == ["PAID", "DELIVERING", "DELIVERED"]
