"""The `kameng` command line."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from kameng.settings import ConfigurationError, get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Kameng: social commerce for virtual goods.")
T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _settings():  # type: ignore[no-untyped-def]
    try:
        settings = get_settings()
        settings.signing_secret()
    except (ConfigurationError, ValueError) as exc:
        raise _fail(f"configuration: {exc}") from None
    return settings


def _with_db(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` with the ORM open (migrations applied first on the embedded default)."""
    from kameng import db

    settings = _settings()

    async def main() -> T:
        if settings.is_sqlite:
            await db.migrate(settings)
        await db.init_db(settings)
        try:
            return await work()
        finally:
            await db.close_db()

    return asyncio.run(main())


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="API processes (needs REDIS_URL and a broker).")] = 1,
) -> None:
    """Serve the API. With no configuration: SQLite, in-process pub/sub and jobs."""
    import uvicorn

    settings = _settings()
    if workers > 1 and (settings.redis_url is None or settings.broker_url is None or settings.is_sqlite):
        raise _fail("--workers > 1 needs DATABASE_URL (PostgreSQL), REDIS_URL and BROKER_URL: "
                    "processes must share their state.")
    uvicorn.run(
        "app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # our structured logging
        access_log=False,  # one line per request comes from the app, with its request id
        proxy_headers=True,
        ws_max_size=256 * 1024,
    )


@cli.command()
def worker(
    threads: Annotated[int | None, typer.Option(help="Worker threads (default KAMENG_WORKER_THREADS).")] = None,
) -> None:
    """Consume jobs from the broker in BROKER_URL (run as many as needed, on any host)."""
    import dramatiq
    from dramatiq.asyncio import EventLoopThread, set_event_loop_thread

    from kameng import runtime
    from kameng.observability import configure_logging
    from workers.broker import build_broker

    settings = _settings()
    if settings.broker_url is None:
        raise _fail("BROKER_URL is not set: on the embedded default `kameng serve` runs the jobs itself.")
    configure_logging(settings.log_level, settings.log_json)
    log = logging.getLogger("kameng.worker")

    broker = build_broker(settings)
    # Async actors run on this one loop, where the ORM, Redis and the outbox relay live.
    loop_thread = EventLoopThread(log)
    loop_thread.start(timeout=5)
    set_event_loop_thread(loop_thread)
    loop_thread.run_coroutine(runtime.start(settings, broker=broker, run_worker=False))

    consumer = dramatiq.Worker(broker, worker_threads=threads or settings.worker_threads)
    consumer.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("worker started")
    stop.wait()
    log.info("worker stopping")
    consumer.stop()
    loop_thread.run_coroutine(runtime.stop())
    set_event_loop_thread(None)
    loop_thread.stop()


@cli.command()
def migrate() -> None:
    """Apply database migrations."""
    from kameng import db

    settings = _settings()
    asyncio.run(db.migrate(settings, quiet=False))
    typer.echo("migrations: up to date")


@cli.command()
def createuser(
    email: Annotated[str, typer.Option(help="Email address (the login).")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    role: Annotated[str, typer.Option(help="admin, merchant, moderator or buyer.")] = "buyer",
    nickname: Annotated[str | None, typer.Option(help="Display name (default: the email's name).")] = None,
) -> None:
    """Create an account (with any role)."""
    from models.accounts import Role
    from resolvers.accounts import create_user
    from resolvers.errors import UserFacingError

    try:
        role_value = Role(role.upper())
    except ValueError:
        raise _fail(f"unknown role {role!r}: use admin, merchant, moderator or buyer") from None

    async def work() -> int:
        user = await create_user(email, password, nickname or email.split("@")[0], role_value)
        return user.id

    try:
        user_id = _with_db(work)
    except UserFacingError as error:
        raise _fail(f"{error.code}: {error.message}") from None
    typer.echo(f"created user {user_id} ({role_value.value})")


@cli.command()
def schema() -> None:
    """Print the GraphQL SDL (CI compares it with schema.graphql)."""
    from schema import print_sdl

    typer.echo(print_sdl(), nl=False)


def main() -> None:
    cli()
