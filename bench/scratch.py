"""A fresh database for the benches that run the use cases in their own process."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[Any]:
    """Settings of a migrated, open database: the embedded SQLite file in a temporary directory, or
    PostgreSQL when ``BENCH_DATABASE_URL`` names a scratch database that may be written."""
    from kameng.settings import Settings, configure
    from models import database as db

    with tempfile.TemporaryDirectory(prefix="kameng-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=os.environ.get("BENCH_DATABASE_URL"),
                            secret_key=uuid.uuid4().hex * 2, log_level="WARNING")
        configure(settings)
        await db.migrate(settings)
        await db.init_db(settings)
        try:
            yield settings
        finally:
            await db.close_db()
