"""Tortoise-ORM configuration, start-up and migrations."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
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
        "connections": {"default": _with_pool_size(settings.database_dsn, settings.db_pool_size)},
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

