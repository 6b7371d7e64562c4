"""Project-level checks: the committed SDL, migrations, settings and the command line."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from graphql import Node, Visitor, parse, print_ast, visit
from typer.testing import CliRunner

from kameng.settings import ConfigurationError, Settings, env_names
from schema import print_sdl

ROOT = Path(__file__).resolve().parent.parent


def test_schema_graphql_is_up_to_date() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == print_sdl(), "schema.graphql is stale: run `uv run kameng schema > schema.graphql`"


class _WithoutDescriptions(Visitor):
    def leave(self, node: Node, *_: object) -> Node | None:
        if getattr(node, "description", None) is not None:
            return dataclasses.replace(node, description=None)  # type: ignore[type-var]
        return None


def test_contract_names_exist() -> None:
    # Signatures read without descriptions (an argument's description puts the arguments on
    # lines of their own in the SDL).
    sdl = print_ast(visit(parse(print_sdl()), _WithoutDescriptions()))
    for name in [
        "interface Node", "viewer: User", "register(input: RegisterInput!): RegisterPayload!",
        "login(input: LoginInput!): LoginPayload!", "refreshToken(input: RefreshTokenInput!): RefreshTokenPayload!",
        "notificationReceived", "type UserError", "code: ErrorCode!", "node(", "nodes(",
    ]:
        assert name in sdl, name
    for code in ["INVALID_INPUT", "NOT_FOUND", "UNAUTHENTICATED", "FORBIDDEN", "INVALID_CREDENTIALS", "EMAIL_TAKEN",
                 "RATE_LIMITED", "SOLD_OUT", "INSUFFICIENT_STOCK", "INSUFFICIENT_BALANCE", "INVALID_STATE",
                 "COUPON_INVALID", "DUPLICATE"]:
        assert f"  {code}\n" in sdl, code


_MIGRATIONS_CHECK = """
import asyncio, sys
from pathlib import Path
from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector
from models.database import tortoise_config
from kameng.settings import Settings

async def main():
    config = tortoise_config(Settings(data_dir=Path(sys.argv[1]), secret_key="s" * 40))
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    print(len(writers))

asyncio.run(main())
"""


def test_migrations_match_the_models(tmp_path: Path) -> None:
    """`tortoise makemigrations` would write nothing: the committed migrations are complete.

    In a process of its own: initialising the ORM for another database rebinds the model
    classes, which would disturb the test server running in this process."""
    done = subprocess.run([sys.executable, "-c", _MIGRATIONS_CHECK, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0", "models changed without a migration: run `uv run tortoise makemigrations`"


def test_production_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    settings = Settings(env="production", database_url="postgres://x@localhost/x", data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="KAMENG_SECRET_KEY"):
        settings.signing_secret()
    with pytest.raises(ConfigurationError, match="at least 32"):
        Settings(env="production", database_url="postgres://x@localhost/x", secret_key="short").signing_secret()
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        Settings(env="production", secret_key="s" * 40)
    assert not (tmp_path / "secret_key").exists()


def test_embedded_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).signing_secret()
    second = Settings(data_dir=tmp_path).signing_secret()
    assert first == second and len(first) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600
    assert Settings(data_dir=tmp_path / "other").signing_secret() != first


def test_debug_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAMENG_") or name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.debug is False and settings.embedded and settings.is_sqlite
    monkeypatch.setenv("KAMENG_DEBUG", "true")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    monkeypatch.setenv("REDIS_URL", "redis://h:6379/0")
    settings = Settings()
    assert settings.debug is True and settings.database_dsn == "postgres://u@h/db" and settings.redis_url


def test_env_names_cover_the_documented_variables() -> None:
    names = env_names()
    for name in ["DATABASE_URL", "REDIS_URL", "BROKER_URL", "KAMENG_SECRET_KEY", "KAMENG_ENV", "KAMENG_DEBUG",
                 "KAMENG_NAMESPACE", "KAMENG_MAX_QUERY_DEPTH", "KAMENG_INTROSPECTION"]:
        assert name in names, name
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in sorted(names) if name not in readme]
    assert not missing, f"README's configuration table lacks {missing}"


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMENG_") and k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
    env["KAMENG_DATA_DIR"] = str(tmp_path)
    return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)


def test_cli_createuser_and_schema(tmp_path: Path) -> None:
    made = _cli(tmp_path, "createuser", "--email", "Admin@Example.com", "--password", "correct horse", "--role", "admin")
    assert made.returncode == 0, made.stderr
    assert "ADMIN" in made.stdout
    again = _cli(tmp_path, "createuser", "--email", "admin@example.com", "--password", "correct horse")
    assert again.returncode != 0 and "EMAIL_TAKEN" in again.stderr
    bad_role = _cli(tmp_path, "createuser", "--email", "x@example.com", "--password", "correct horse", "--role", "king")
    assert bad_role.returncode != 0 and "unknown role" in bad_role.stderr
    printed = _cli(tmp_path, "schema")
    assert printed.returncode == 0 and printed.stdout == print_sdl()


def test_cli_refuses_unsafe_configurations(tmp_path: Path) -> None:
    env_prod = _cli(tmp_path, "--help")
    assert env_prod.returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "service", "migrate"], capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("KAMENG_")}, "KAMENG_ENV": "production",
             "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "KAMENG_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2 and "KAMENG_SECRET_KEY" in result.stderr
    worker = _cli(tmp_path, "worker")
    assert worker.returncode == 2 and "BROKER_URL" in worker.stderr
    CliRunner()  # typer's runner is importable: the CLI is a typer app


def test_cli_seed_demo(tmp_path: Path) -> None:
    import sqlite3

    first = _cli(tmp_path, "seed", "--demo")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "buyer@demo.example.com" in first.stdout
    again = _cli(tmp_path, "seed", "--demo")
    assert again.returncode == 0 and "already seeded" in again.stdout
    with sqlite3.connect(tmp_path / "kameng.sqlite3") as db:
        assert db.execute("SELECT o.status FROM orders o JOIN \"user\" u ON u.id = o.buyer_id "
                          "WHERE u.email = 'buyer@demo.example.com'").fetchall() == [("DELIVERED",)]
        # Months of history behind it (service/seed_history.py) for the retention report.
        history = db.execute("SELECT count(*), count(DISTINCT buyer_id), count(DISTINCT substr(paid_at, 1, 7)) "
                             "FROM orders WHERE order_no LIKE 'H%' AND status = 'COMPLETED'").fetchone()
        assert history[0] > 500 and history[1] >= 300 and history[2] >= 8, history
        # Segment sizes week by week, a past campaign with both arms, answered surveys (service/seed_campaigns.py).
        assert db.execute("SELECT count(DISTINCT day) FROM lifecycle_segment_size").fetchone()[0] >= 30
        assert {arm for (arm,) in db.execute("SELECT arm FROM campaign_member")} == {"TREATMENT", "CONTROL"}
        assert db.execute("SELECT count(*) FROM survey WHERE score IS NOT NULL").fetchone()[0] >= 50
        assert db.execute("SELECT count(*) FROM card_key WHERE status = 'AVAILABLE'").fetchone() == (19,)
        assert db.execute("SELECT kind, verified_purchase FROM post ORDER BY id").fetchall() == [
            ("SHOWCASE", 1), ("REVIEW", 1)]
        assert db.execute("SELECT count(*) FROM comment").fetchone() == (1,)
        # Left for `kameng serve` to relay: nothing was sent to a broker that died with the command.
        assert db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0] > 0
    assert _cli(tmp_path, "seed").returncode == 2
