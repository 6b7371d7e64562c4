"""The `kameng` command line."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kameng.settings import ConfigurationError, Settings, get_settings
from service.evaluations import churn_cli, recommend_cli

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Kameng: social commerce for virtual goods.")
cli.add_typer(churn_cli, name="churn")
cli.add_typer(recommend_cli, name="recommend")
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
    from models import database as db

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
    uvicorn.run("app:create_app", factory=True, host=host, port=port, workers=workers, **server_options(settings))


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for `serve` (tests start servers with the same)."""
    # Whose X-Forwarded-For decides the client address (which rate limits count) is an explicit
    # setting: uvicorn's own default trusts loopback, so a same-host proxy passing the client's
    # header along let anyone pick their address.
    trusted = [ip.strip() for ip in settings.forwarded_allow_ips.split(",") if ip.strip()]
    return {
        "log_config": None,  # our structured logging
        "access_log": False,  # one line per request comes from the app, with its request id
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or [],
        "ws_max_size": 256 * 1024,
        # permessage-deflate keeps a zlib compressor and decompressor per socket: 57.7 KiB of
        # RSS per idle liveFeed subscriber with it, 18.5 without (bench/feeds.py --only live,
        # 2,000 subscribers); our frames are small JSON, so compression bought little.
        "ws_per_message_deflate": False,
        # uvicorn closes an idle keep-alive connection after 5 s, the very time httpx, Node and
        # browsers keep one for reuse: a request sent as the server closes reads a reset
        # (httpx.ReadError, seen in CI). The server must outwait its clients and any proxy in front
        # (nginx 75 s, cloud load balancers 60 s), so it keeps them 75 s.
        "timeout_keep_alive": 75,
    }


@cli.command()
def worker(
    threads: Annotated[
        int | None, typer.Option(help="Worker threads for each of the two paces (default KAMENG_WORKER_THREADS).")
    ] = None,
) -> None:
    """Consume jobs from the broker in BROKER_URL (run as many as needed, on any host)."""
    from dramatiq.asyncio import EventLoopThread, set_event_loop_thread

    from service import wiring
    from kameng.observability import configure_logging
    from workers.broker import build_broker
    from workers.consumers import Consumers

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
    loop_thread.run_coroutine(wiring.start(settings, broker=broker, run_worker=False, sweeps=True))

    consumers = Consumers(broker, settings, threads or settings.worker_threads)
    consumers.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("worker started")
    stop.wait()
    log.info("worker stopping")
    consumers.stop()
    loop_thread.run_coroutine(wiring.stop())
    set_event_loop_thread(None)
    loop_thread.stop()


@cli.command()
def migrate() -> None:
    """Apply database migrations."""
    from models import database as db

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
    from models.accounts.users import Role
    from resolvers.accounts.users import create_user
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
def seed(
    demo: Annotated[bool, typer.Option("--demo", help="A small demo shop and community.")] = False,
) -> None:
    """Fill the database with demo data (a shop, products, keys, an order, posts)."""
    from service.seed import seed_demo

    if not demo:
        raise _fail("nothing to seed: pass --demo")
    settings = _settings()
    made = asyncio.run(seed_demo(settings))
    if made is None:
        typer.echo("demo: already seeded")
        return
    typer.echo("demo: ready. Sign in with (passwords are random, shown once):")
    for account in made:
        typer.echo(f"  {account.role.value:<9} {account.email}  {account.password}")


@cli.command()
def schema() -> None:
    """Print the GraphQL SDL (CI compares it with schema.graphql)."""
    from schema import print_sdl

    typer.echo(print_sdl(), nl=False)


@cli.command()
def simulator(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    secret: Annotated[
        str | None, typer.Option(help="The kpay HMAC secret (default KAMENG_KPAY_SECRET).", show_default=False)
    ] = None,
    callback_url: Annotated[
        str | None, typer.Option(help="Send callbacks here instead of each pay link's notify_url.")
    ] = None,
) -> None:
    """Run the kpay payment gateway simulator (point KAMENG_KPAY_URL at it)."""
    import uvicorn

    from service.simulator import create_simulator

    if secret is None:
        configured = get_settings().kpay_secret
        secret = configured.get_secret_value() if configured is not None else None
    try:
        app = create_simulator(secret or "", callback_url)
    except ValueError as exc:
        raise _fail(f"simulator: {exc} (--secret or KAMENG_KPAY_SECRET)") from None
    typer.echo(f"kpay simulator on http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level="warning")


keys_cli = typer.Typer(no_args_is_help=True, help="Card keys (卡密) of CARD_KEY products.")
cli.add_typer(keys_cli, name="keys")


def _product_id(value: str) -> int:
    """A product's number, or its global ID as the API shows it."""
    if value.isdigit():
        return int(value)
    from strawberry.relay import GlobalID

    try:
        gid = GlobalID.from_id(value)
        if gid.type_name == "Product" and gid.node_id.isdigit():
            return int(gid.node_id)
    except Exception:  # not a global ID at all
        pass
    raise _fail(f"--product {value!r}: give the product's number or its global ID")


def read_key_file(path: Path, *, skip_header: bool = False) -> list[str]:
    """The raw keys of a file: one per line, or the first column of each row of a .csv."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as handle:  # utf-8-sig: drop a BOM
        if path.suffix.lower() == ".csv":
            keys = [row[0] if row else "" for row in csv.reader(handle)]
        else:
            keys = [line.rstrip("\r\n") for line in handle]
    return keys[1:] if skip_header else keys


@keys_cli.command("import")
def import_keys(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Text (one key per line) or .csv (first column).")],
    product: Annotated[str, typer.Option("--product", help="The CARD_KEY product: its number or global ID.")],
    chunk_size: Annotated[int | None, typer.Option(min=1, max=5000, help="Keys per transaction (default: 25,000 "
                                                   "through COPY on PostgreSQL, 1,000 elsewhere).")] = None,
    skip_header: Annotated[bool, typer.Option(help="The first line (row) is a header.")] = False,
) -> None:
    """Import card keys into a product: trimmed, blanks dropped, duplicates skipped.

    Runs as the operator (no ownership check), in short transactions of --chunk-size keys so that a large file never holds the API up (on PostgreSQL: COPY into a staging table, deduplicated in SQL).

    Re-running a file imports only what is missing.
    """
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from resolvers.errors import UserFacingError
    from resolvers.commerce.inventory import ImportResult, import_card_keys

    product_id = _product_id(product)
    try:
        keys = read_key_file(file, skip_header=skip_header)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(f"{file}: cannot read it as UTF-8 text or CSV ({exc})") from None

    bar = Progress(
        TextColumn("importing keys"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True),
    )  # fmt: skip
    task = bar.add_task("import", total=None)
    elapsed = 0.0

    async def work() -> ImportResult:
        nonlocal elapsed
        started = time.perf_counter()
        result = await import_card_keys(
            None, product_id, keys, limit=None, chunk_size=chunk_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        return result

    try:
        with bar:
            result = _with_db(work)
    except UserFacingError as error:
        raise _fail(f"{error.code}: {error.message}") from None
    rate = (result.imported + result.duplicates) / elapsed if elapsed > 0 else 0.0
    typer.echo(
        f"imported {result.imported}, duplicates {result.duplicates}, blank {result.blank} "
        f"in {elapsed:.2f} s ({rate:.0f} keys/s)"
    )


tradelog_cli = typer.Typer(no_args_is_help=True, help="The verifiable trade log.")
cli.add_typer(tradelog_cli, name="tradelog")


@tradelog_cli.command("verify")
def tradelog_verify(
    api: Annotated[str, typer.Option(help="The GraphQL endpoint, e.g. https://shop.example/graphql.")],
    order: Annotated[str | None, typer.Option(help="An order's global ID: check its leaves are in the head.")] = None,
    token: Annotated[str | None, typer.Option(envvar="KAMENG_TOKEN", help="Access token of the order's buyer, "
                                              "merchant or staff.")] = None,
    previous: Annotated[Path | None, typer.Option(help="A head saved earlier (--save): check the log only grew "
                                                  "since.")] = None,
    public_key: Annotated[str | None, typer.Option(help="The log's public key (base64), if you pinned it.")] = None,
    save: Annotated[Path | None, typer.Option(help="Where to keep the verified head for the next run.")] = None,
) -> None:
    """Check signed heads, an order's inclusion proofs and the consistency between two heads,
    recomputing every proof locally from the API's answers."""
    import httpx

    from service.tradelog_verify import verify

    try:
        report = verify(api, token=token, order_id=order, previous=previous, public_key=public_key, save=save)
    except (OSError, ValueError, KeyError, httpx.HTTPError) as exc:
        raise _fail(f"tradelog verify: {exc}") from None
    for line in report.checked:
        typer.echo(f"ok    {line}")
    for line in report.failures:
        typer.secho(f"FAIL  {line}", err=True, fg=typer.colors.RED)
    if report.failures:
        raise typer.Exit(code=1)


@cli.command()
def report(
    out: Annotated[Path, typer.Option(help="Directory for the tables (CSV, JSON) and charts (PNG, SVG).")],
    since: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (default: 11 months ago, 1st).")] = None,
    until: Annotated[str | None, typer.Option(help="Day after the last, YYYY-MM-DD (default: tomorrow).")] = None,
) -> None:
    """Write the retention analytics report: repurchase, visits, cohort retention and LTV (issue 12).

    Run by the operator (no API permission involved); aggregates over fewer than 5 users are suppressed.
    """
    from datetime import date

    from resolvers.errors import UserFacingError
    from resolvers.lifecycle import analytics
    from service import report as retention_report

    try:
        start = date.fromisoformat(since) if since else None
        end = date.fromisoformat(until) if until else None
    except ValueError as exc:
        raise _fail(f"--since/--until: {exc}") from None
    try:
        computed = _with_db(lambda: analytics.compute(start, end))
    except UserFacingError as error:
        raise _fail(f"{error.code}: {error.message}") from None
    files = retention_report.write(computed, out)
    typer.echo(f"report {computed.start} to {computed.end} (exclusive): {len(files)} files in {out}")
    for path in files:
        typer.echo(f"  {path.name}")


def main() -> None:
    cli()
