"""A worker process killed with SIGKILL in the middle of deliveries: after a restart every paid
order is delivered exactly once. Real processes, PostgreSQL, Redis and a Redis broker, on a
database and namespace of the test's own."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.conftest import LOCAL_PG, LOCAL_REDIS, drop_redis_namespace, new_namespace, postgres_database, reachable

ROOT = Path(__file__).resolve().parent.parent
ORDERS = 200

pytestmark = pytest.mark.skipif(
    not (reachable(LOCAL_PG, 5432) and reachable(LOCAL_REDIS, 6379)), reason="needs PostgreSQL and Redis"
)


def _env(database_url: str, namespace: str, data_dir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("KAMENG_", "DATABASE_URL", "REDIS_URL", "BROKER_URL"))}
    return {
        **keep,
        "DATABASE_URL": database_url,
        "REDIS_URL": LOCAL_REDIS,
        "BROKER_URL": LOCAL_REDIS,
        "KAMENG_NAMESPACE": namespace,
        "KAMENG_DATA_DIR": str(data_dir),
        "KAMENG_SECRET_KEY": uuid.uuid4().hex * 2,
        "KAMENG_CARD_KEY_KEYS": "t1:" + base64.b64encode(os.urandom(32)).decode(),
        "KAMENG_FINGERPRINT_KEY": uuid.uuid4().hex,
        "KAMENG_SWEEP_SECONDS": "0.5",
        "KAMENG_STUCK_DELIVERY_SECONDS": "2",
        "KAMENG_WORKER_THREADS": "4",
        "KAMENG_LOG_LEVEL": "WARNING",
    }


async def _scalar(dsn: str, sql: str) -> object:
    connection = await asyncpg.connect(dsn.replace("postgres://", "postgresql://", 1))
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def _wait_for(dsn: str, sql: str, predicate, timeout: float) -> object:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await _scalar(dsn, sql)
        if predicate(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting: {sql} = {value}")
        await asyncio.sleep(0.02)


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "service", "worker"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"))


DELIVERED = "SELECT count(*) FROM orders WHERE status = 'DELIVERED'"


async def test_sigkilled_worker_delivers_every_order_exactly_once(tmp_path: Path) -> None:
    namespace = new_namespace()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with postgres_database(LOCAL_PG, namespace) as dsn:
            env = _env(dsn, namespace, tmp_path)
            _run(env, "service", "migrate")
            setup = orjson.loads(_run(env, "tests.crash_scenario", "setup", str(ORDERS)).strip().splitlines()[-1])
            assert len(setup["orders"]) == ORDERS

            log = tmp_path / "worker.log"
            workers.append(_worker(env, log))
            at_kill = await _wait_for(dsn, DELIVERED, lambda n: n >= 10, timeout=60)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=10)
            delivered_then = await _scalar(dsn, DELIVERED)
            assert delivered_then < ORDERS, "the worker finished before it was killed: the test proved nothing"

            workers.append(_worker(env, log))
            await _wait_for(dsn, DELIVERED, lambda n: n == ORDERS, timeout=120)
            # Let any duplicate messages (the killed worker's, re-sent ones) run out, then check.
            await asyncio.sleep(3)
            workers[1].send_signal(signal.SIGTERM)
            workers[1].wait(timeout=30)

            assert await _scalar(dsn, DELIVERED) == ORDERS
            assert await _scalar(dsn, "SELECT count(*) FROM card_key WHERE status = 'SOLD'") == ORDERS
            assert await _scalar(dsn, "SELECT count(DISTINCT order_id) FROM card_key WHERE status = 'SOLD'") == ORDERS
            assert await _scalar(dsn, "SELECT count(*) FROM card_key WHERE status <> 'SOLD'") == 0
            assert await _scalar(
                dsn, "SELECT count(*) FROM (SELECT order_id FROM order_event WHERE status = 'DELIVERED' "
                     "GROUP BY order_id HAVING count(*) <> 1) AS twice"
            ) == 0
            assert await _scalar(dsn, f"SELECT sold_count FROM product WHERE id = {setup['product']}") == ORDERS
            assert await _scalar(dsn, "SELECT coalesce(sum(amount), 0) FROM ledger_entry") == Decimal("0.00")
            assert await _scalar(dsn, "SELECT sum(balance) FROM ledger_account WHERE code LIKE 'escrow:%'") == Decimal(ORDERS)
            assert at_kill >= 10
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        await drop_redis_namespace(LOCAL_REDIS, namespace)
