"""PostgreSQL connections go back to the pool without asyncpg's reset query (models/database.py).

That is only safe while no code leaves state in a session: these tests hold the code to it,
and show that what a reset must still do -- end a transaction left open -- is done."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

from models.database import SessionlessConnection, tortoise_config
from tests.conftest import LOCAL_PG, make_settings, new_namespace, postgres_database, reachable

ROOT = Path(__file__).resolve().parent.parent
CODE = ("app.py", "kameng", "models", "resolvers", "schema", "service", "subscriptions", "workers")
# Session state a pooled connection would carry to its next user: session advisory locks,
# LISTEN, session-wide settings, cursors held outside a transaction.
SESSION_STATE = re.compile(
    r"pg_advisory_lock\(|pg_try_advisory_lock\(|add_listener\(|set_config\([^)]*false"
    # statements that begin a string literal (not a column's SET inside an UPDATE)
    r"""|(?:^|[\s(=,]|\b[fr])["']\s*(LISTEN\s|SET\s+(?!LOCAL\s)|DECLARE\s+\w+\s+CURSOR\s+WITH\s+HOLD)"""
)
# Temporary tables are not in the list: asyncpg's reset query never dropped them either.


def test_no_code_keeps_state_in_a_session() -> None:
    found = []
    for top in CODE:
        paths = [ROOT / top] if top.endswith(".py") else sorted((ROOT / top).rglob("*.py"))
        for path in paths:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if SESSION_STATE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "session state on a pooled connection (models/database.py skips the reset):\n" + "\n".join(found)


def test_the_pattern_catches_what_it_must() -> None:
    caught = [
        'await con.execute("SELECT pg_advisory_lock(1)")',
        'await con.execute("LISTEN orders")',
        "await con.execute('SET work_mem = 64MB')",
        'sql = f"SET SESSION statement_timeout TO {ms}"',
        """await con.execute("SELECT set_config('jit', 'off', false)")""",
        'await con.execute("DECLARE c CURSOR WITH HOLD FOR SELECT 1")',
    ]
    passed = [
        'await con.execute("SELECT pg_advisory_xact_lock(1)")',
        """await raw.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")""",
        """await con.execute('UPDATE "orders" SET "status"=$1')""",
        "# the port to listen on; the plan was set not to renew",
    ]
    assert [line for line in caught if not SESSION_STATE.search(line)] == []
    assert [line for line in passed if SESSION_STATE.search(line)] == []


def test_postgres_pools_use_the_sessionless_connection(tmp_path: Path) -> None:
    settings = make_settings("kt", tmp_path, database_url="postgres://u@db.example:5432/kameng")
    connection = tortoise_config(settings)["connections"]["default"]
    assert connection["credentials"]["connection_class"] is SessionlessConnection
    assert int(connection["credentials"]["maxsize"]) == settings.db_pool_size
    assert isinstance(tortoise_config(make_settings("kt", tmp_path))["connections"]["default"], str)  # SQLite


@pytest.mark.skipif(not reachable(LOCAL_PG, 5432), reason="needs PostgreSQL")
@pytest.mark.parametrize(("connection_class", "last_statement"), [
    (SessionlessConnection, "SELECT 'marker'"),
    (asyncpg.Connection, "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;"),  # the default, for contrast
])
async def test_a_released_connection_sends_no_reset_and_ends_an_open_transaction(
        connection_class: type[asyncpg.Connection], last_statement: str) -> None:
    async with postgres_database(LOCAL_PG, new_namespace()) as dsn:
        dsn = dsn.replace("postgres://", "postgresql://", 1)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, connection_class=connection_class)
        observer = await asyncpg.connect(dsn)
        try:
            async with pool.acquire() as con:
                backend = await con.fetchval("SELECT pg_backend_pid()")
                await con.fetchval("SELECT 'marker'")
            # What the session ran last, seen from another one: the reset query, or nothing after ours.
            seen = await observer.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", backend)
            assert seen.strip() == last_statement
            async with pool.acquire() as con:
                await con.execute("BEGIN")
                await con.execute("CREATE TABLE left_open (id int)")
                # released inside the transaction: asyncpg rolls it back on the way to the pool
            async with pool.acquire() as con:
                assert await con.fetchval("SELECT pg_backend_pid()") == backend  # the same session
                assert not con.is_in_transaction()
                assert await con.fetchval("SELECT to_regclass('left_open')") is None
        finally:
            await observer.close()
            await pool.close()
