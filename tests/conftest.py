"""Test stack: a real Kameng server (uvicorn, in this process's loop) on its own database and
Redis namespace.

Embedded default unless these are set (as `.ci/run` does for its second run):

* ``KAMENG_TEST_POSTGRES``  admin URL of a PostgreSQL server; a fresh database is created
  for the session and dropped afterwards.
* ``KAMENG_TEST_REDIS``     Redis URL; every key and channel lives under a random namespace
  that is deleted afterwards.
* ``KAMENG_TEST_BROKER``    dramatiq broker URL (redis:// or amqp://), namespaced the same way.

With ``KAMENG_TEST_REQUIRE_SERVICES=1`` a skipped test fails the run: in CI nothing skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import itertools
import socket
import tempfile
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import uvicorn

from kameng import crypto, runtime
from kameng.settings import Settings, configure

PG_ADMIN = os.environ.get("KAMENG_TEST_POSTGRES")
REDIS_URL = os.environ.get("KAMENG_TEST_REDIS")
BROKER_URL = os.environ.get("KAMENG_TEST_BROKER")
REQUIRE_SERVICES = os.environ.get("KAMENG_TEST_REQUIRE_SERVICES") == "1"
LOCAL_REDIS = REDIS_URL or "redis://127.0.0.1:6379/15"
LOCAL_PG = PG_ADMIN or "postgres://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP = os.environ.get("KAMENG_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and call.when in ("setup", "call"):
        report.outcome = "failed"
        report.longrepr = f"skipped while KAMENG_TEST_REQUIRE_SERVICES=1: {report.longrepr}"


def reachable(url: str, default_port: int) -> bool:
    parsed = httpx.URL(url.replace("postgres://", "http://").replace("redis://", "http://").replace("amqp://", "http://"))
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_namespace() -> str:
    return f"kt{uuid.uuid4().hex[:12]}"


async def drop_redis_namespace(url: str, namespace: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        async for key in client.scan_iter(match=f"{namespace}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


def drop_amqp_queues(url: str, namespace: str, queues: list[str]) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in queues:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{queue}{suffix}")
    finally:
        connection.close()


@contextlib.asynccontextmanager
async def postgres_database(admin_url: str, name: str) -> AsyncIterator[str]:
    import asyncpg

    admin = await asyncpg.connect(admin_url.replace("postgres://", "postgresql://", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(admin_url.replace("postgres://", "postgresql://", 1))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class Stack:
    settings: Settings
    url: str
    namespace: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"


def make_settings(namespace: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "namespace": namespace,
        "data_dir": data_dir,
        "secret_key": uuid.uuid4().hex + uuid.uuid4().hex,
        "kpay_secret": "test-" + uuid.uuid4().hex,
        "inprocess_worker": True,
        "outbox_sweep_seconds": 0.2,
        "log_level": "WARNING",
        "login_limit_per_ip": "1000/minute",
        "register_limit_per_ip": "1000/minute",
        # Community: limits out of the way (tests/test_moderation.py fills them up on purpose),
        # and a few sensitive words no other test would write by accident.
        "post_limit": "1000/hour",
        "post_limit_new_account": "500/hour",
        "comment_limit": "1000/hour",
        "comment_limit_new_account": "500/hour",
        "sensitive_words": "kmblockword:block, kmmaskword:mask, kmholdword:hold",
        # The analytics tests write visits in past years (2016, 2017, 2019); the scheduler's
        # retention sweep would fold them away between write and read. tests/test_events.py
        # sweeps with an explicit clock instead.
        "events_retention_days": 36_500,
        # The tests' suppliers listen on 127.0.0.1 (tests/test_merchant_supply.py turns it off).
        "supplier_allow_private": True,
        "database_url": None,
        "redis_url": REDIS_URL,
        "broker_url": BROKER_URL,
    }
    values.update(overrides)
    return Settings(**values)


#: Where a test opened a bare savepoint (a nested ``in_transaction()``) inside ``outbox.atomic()``.
_bare_savepoints: list[str] = []
_open_savepoints: dict[int, int] = {}


def _guard_savepoints() -> None:
    """Refuse, in every test, a savepoint inside ``outbox.atomic()`` that is not a nested
    ``outbox.atomic()``: the outbox writes its rows at commit and forgets those of a nested
    block that rolls back, which it can only do for the blocks it opened (subscriptions/outbox.py)."""
    from tortoise.backends.base.client import NestedTransactionContext

    from subscriptions import outbox

    enter, leave = NestedTransactionContext.__aenter__, NestedTransactionContext.__aexit__

    async def guarded_enter(self: Any) -> Any:
        writes = outbox.current()
        if writes is None:
            return await enter(self)
        opened = _open_savepoints.get(id(writes), 0) + 1
        if opened > writes.savepoints:
            _bare_savepoints.append("".join(traceback.format_stack(limit=8)[:-1]))
            raise AssertionError("a savepoint inside outbox.atomic() must be a nested outbox.atomic(), "
                                 "not in_transaction(): its rows would be written even if it rolled back")
        result = await enter(self)
        _open_savepoints[id(writes)] = opened
        return result

    async def guarded_leave(self: Any, *exc: Any) -> Any:
        writes = outbox.current()
        if writes is not None and _open_savepoints.get(id(writes)):
            _open_savepoints[id(writes)] -= 1
            if not _open_savepoints[id(writes)]:
                del _open_savepoints[id(writes)]
        return await leave(self, *exc)

    NestedTransactionContext.__aenter__, NestedTransactionContext.__aexit__ = guarded_enter, guarded_leave  # type: ignore[method-assign]


_guard_savepoints()


@pytest.fixture(autouse=True)
def no_bare_savepoint_inside_atomic() -> Iterator[None]:
    _bare_savepoints.clear()
    yield
    assert not _bare_savepoints, "a bare savepoint inside outbox.atomic(), opened at:\n" + _bare_savepoints[0]


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    namespace = new_namespace()
    with tempfile.TemporaryDirectory(prefix="kameng-test-") as tmp:
        async with contextlib.AsyncExitStack() as exits:
            database_url = None
            if PG_ADMIN:
                database_url = await exits.enter_async_context(postgres_database(PG_ADMIN, namespace))
            settings = make_settings(namespace, Path(tmp), database_url=database_url)
            configure(settings)
            crypto.reset()
            if not settings.is_sqlite:
                from models import database as db

                await db.migrate(settings)

            from app import create_app

            port = free_port()
            from service.cli import server_options

            # The options `kameng serve` uses, trusting the test clients' X-Forwarded-For.
            options = server_options(settings.model_copy(update={"forwarded_allow_ips": "127.0.0.1"}))
            config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, lifespan="on", **options)
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve())
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.02)
            try:
                yield Stack(settings, f"http://127.0.0.1:{port}", namespace)
            finally:
                server.should_exit = True
                await serving
                if REDIS_URL:
                    await drop_redis_namespace(REDIS_URL, namespace)
                if BROKER_URL and BROKER_URL.startswith("redis"):
                    await drop_redis_namespace(BROKER_URL, namespace)
                if BROKER_URL and BROKER_URL.startswith("amqp"):
                    from workers.broker import queue_name
                    from workers.jobs import JOBS

                    queues = sorted({queue_name(settings, spec.queue) for spec in JOBS.values()})
                    await asyncio.to_thread(drop_amqp_queues, BROKER_URL, namespace, queues)
                configure(None)


_client_numbers = itertools.count(1)


def documentation_ip() -> str:
    """A distinct client address per test client (198.18.0.0/15, the benchmarking range, only
    ever a header value). Counted, not drawn at random: two clients sharing an address share
    its rate limits, and a test that uses up the lookup limit on purpose would fail another."""
    n = next(_client_numbers)
    return f"198.18.{n // 254 % 256}.{n % 254 + 1}"


class Client:
    """A GraphQL client of the test server, optionally signed in."""

    def __init__(self, http: httpx.AsyncClient, ip: str | None = None) -> None:
        self.http = http
        self.token: str | None = None
        self.refresh: str | None = None
        self.ip = ip or documentation_ip()

    async def post(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        all_headers = {"x-forwarded-for": self.ip, **(headers or {})}
        bearer = self.token if token is None else token  # token="" sends none
        if bearer:
            all_headers["authorization"] = f"Bearer {bearer}"
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers)

    async def gql(self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        response = await self.post(query, variables, **kwargs)
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def register(self, email: str | None = None, password: str = "correct horse battery",
                       nickname: str = "Tester") -> dict[str, Any]:
        email = email or f"{uuid.uuid4().hex[:12]}@example.com"
        data = await self.gql(REGISTER, {"input": {"email": email, "password": password, "nickname": nickname}})
        payload = data["register"]
        assert payload["errors"] == [], payload
        self.token, self.refresh = payload["accessToken"], payload["refreshToken"]
        payload["email"] = email
        payload["password"] = password
        return payload

    async def login(self, email: str, password: str) -> dict[str, Any]:
        data = await self.gql(LOGIN, {"input": {"email": email, "password": password}})
        payload = data["login"]
        if not payload["errors"]:
            self.token, self.refresh = payload["accessToken"], payload["refreshToken"]
        return payload


REGISTER = """mutation($input: RegisterInput!) { register(input: $input) {
  errors { code field message } accessToken refreshToken expiresIn user { id nickname email role tier } } }"""
LOGIN = """mutation($input: LoginInput!) { login(input: $input) {
  errors { code field message } accessToken refreshToken user { id email } } }"""


@pytest.fixture(scope="session")
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> Client:
    return Client(http)


@pytest.fixture
def make_client(http: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    return lambda ip=None: Client(http, ip)


@pytest.fixture
def rt(stack: Stack) -> runtime.Runtime:
    return runtime.current()


async def eventually(check: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


class QueryCounter(logging.Handler):
    """Counts the SQL statements the ORM sends on behalf of HTTP requests."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.note(record.getMessage())

    def note(self, statement: str) -> None:
        # Only statements made while serving a request (the middleware binds a request id):
        # background sweeps, jobs and the outbox relay share the loop but not that context.
        if structlog.contextvars.get_contextvars().get("request_id"):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@contextlib.contextmanager
def count_queries() -> Iterator[QueryCounter]:
    """The statements sent while serving requests, savepoints among them: a nested
    ``in_transaction()`` is two more round trips (SAVEPOINT, then RELEASE or ROLLBACK TO)
    that the ORM's statement log does not show."""
    from tortoise.backends.base.client import NestedTransactionContext

    logger = logging.getLogger("tortoise.db_client")
    counter = QueryCounter()
    previous = logger.level
    enter, leave = NestedTransactionContext.__aenter__, NestedTransactionContext.__aexit__

    async def savepoint(self: Any) -> Any:
        counter.note("SAVEPOINT")
        return await enter(self)

    async def release(self: Any, *exc: Any) -> Any:
        counter.note("ROLLBACK TO SAVEPOINT" if exc[0] else "RELEASE SAVEPOINT")
        return await leave(self, *exc)

    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    NestedTransactionContext.__aenter__, NestedTransactionContext.__aexit__ = savepoint, release  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        NestedTransactionContext.__aenter__, NestedTransactionContext.__aexit__ = enter, leave  # type: ignore[method-assign]
        logger.removeHandler(counter)
        logger.setLevel(previous)
