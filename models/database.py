"""Tortoise-ORM configuration, start-up and migrations."""

from __future__ import annotations

from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext, get_current_context
from tortoise.migrations.api import migrate as tortoise_migrate

from kameng.settings import Settings, get_settings
from models import MODEL_MODULES

APP_LABEL = "kameng"


def tortoise_config(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": _connection(settings)},
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "models.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    # `tortoise makemigrations` reads models.database.TORTOISE_ORM (pyproject [tool.tortoise]);
    # computed on access so that importing this module reads no environment.
    if name == "TORTOISE_ORM":
        return tortoise_config()
    raise AttributeError(name)


class SessionlessConnection(asyncpg.Connection):
    """A pooled connection handed back without asyncpg's reset query.

    asyncpg sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release, and Tortoise acquires and releases per statement outside a transaction: 16 of the
    ~100 statements the API sent per paid order were that query, each a round trip. Kameng
    keeps no state in a session — advisory locks are ``_xact_``, settings ``SET LOCAL``,
    no LISTEN, no cursors outside transactions — and asyncpg still rolls back a transaction
    left open before the connection goes back (``Connection._reset``), so there is nothing for
    the query to undo. A test (tests/test_database.py) holds the code to that.
    """

    def get_reset_query(self) -> str:
        return ""


def _connection(settings: Settings) -> str | dict[str, Any]:
    dsn = _with_pool_size(settings.database_dsn, settings.db_pool_size)
    if settings.is_sqlite:
        return dsn
    config = expand_db_url(dsn)
    if config["engine"] == "tortoise.backends.asyncpg":
        config["credentials"]["connection_class"] = SessionlessConnection
    return config


def _with_pool_size(dsn: str, size: int) -> str:
    """PostgreSQL URLs get a pool of ``size`` connections unless the URL sets ``maxsize``."""
    if not dsn.startswith(("postgres://", "postgresql://", "asyncpg://")) or "maxsize=" in dsn:
        return dsn
    return f"{dsn}{'&' if '?' in dsn else '?'}maxsize={size}"


async def init_db(settings: Settings | None = None) -> None:
    """Open the ORM for this process (idempotent).

    The context is also the global fallback, so that code running on this loop from other
    tasks or threads (dramatiq's worker threads hand coroutines to it) finds it.
    """
    if get_current_context() is not None and Tortoise._inited:
        return
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    if get_current_context() is not None:
        await Tortoise.close_connections()


async def migrate(settings: Settings | None = None, *, quiet: bool = True) -> None:
    """Apply every pending migration (what `kameng migrate` runs)."""

    def progress(event: str, app_label: str, name: str) -> None:
        if not quiet and event == "apply_done":
            print(f"  applied {app_label}.{name}")

    # A context of its own: the migration run must not become this process's ORM state.
    async with TortoiseContext():
        await tortoise_migrate(config=tortoise_config(settings), progress=progress)

