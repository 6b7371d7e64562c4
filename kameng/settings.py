"""One typed settings object, read from the environment.

With no environment at all Kameng runs on the embedded default: a SQLite file, in-process
pub/sub, rate limits and jobs, and a secret generated once into the data directory. With
``KAMENG_ENV=production`` nothing is generated: a missing secret stops start-up.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from decimal import Decimal
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kameng.settings_loop import LoopSettings
from kameng.settings_speed import SpeedSettings


class ConfigurationError(RuntimeError):
    """Start-up refused because the configuration is unsafe or incomplete."""


class Settings(LoopSettings, SpeedSettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAMENG_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    debug: bool = False
    data_dir: Path = Path("var")

    # The three URLs keep their conventional, unprefixed names.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "KAMENG_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "KAMENG_REDIS_URL")
    )
    broker_url: str | None = Field(
        default=None, validation_alias=AliasChoices("BROKER_URL", "KAMENG_BROKER_URL")
    )
    # Connections per process to PostgreSQL (payments, deliveries and subscriptions share them).
    db_pool_size: int = Field(default=20, ge=1, le=200)
    # Connections per process to Redis; a command beyond them waits for one (kameng/redis.py).
    redis_max_connections: int = Field(default=256, ge=4, le=10_000)
    # Prefix of every Redis key, channel and broker queue namespace this deployment owns;
    # tests set a random one so that they share the services without touching each other.
    namespace: str = "kameng"

    secret_key: SecretStr | None = None
    # Card-key encryption: "kid1:<base64 32 bytes>,kid2:..." and which kid seals new keys.
    # Old kids stay listed to decrypt what they sealed (rotation). The fingerprint key
    # (HMAC for dedupe) must never change once keys are imported.
    card_key_keys: SecretStr | None = None
    card_key_active: str | None = None
    fingerprint_key: SecretStr | None = None
    # Signs the trade log's tree heads (issue 14): base64 of a 32-byte Ed25519 private key.
    # Changing it makes earlier heads unverifiable with the new public key.
    tradelog_signing_key: SecretStr | None = None
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)

    # GraphQL hardening, enforced before execution.
    max_query_depth: int = Field(default=12, ge=2)
    max_query_tokens: int = Field(default=2000, ge=50)
    max_aliases: int = Field(default=30, ge=1)
    introspection: bool = True

    # -- issue 9: query cost (schema/cost.py). Every object 1 point, lists times their size.
    # The most one operation may cost; more is refused before execution (QUERY_TOO_COSTLY).
    max_query_cost: int = Field(default=5000, ge=1)
    # The size assumed for a list field that has no first/last/ids argument.
    query_cost_list_size: int = Field(default=10, ge=1)
    # Each client's budget (user id, else address): a bucket of this many points (0: no
    # budget), refilled from empty to full in this many seconds; RATE_LIMITED when short.
    query_budget: int = Field(default=50_000, ge=0)
    query_budget_refill_seconds: float = Field(default=60.0, gt=0)

    # Login throttling (limits' notation: "N/period").
    login_limit_per_account: str = "5/minute"
    login_limit_per_ip: str = "30/minute"
    register_limit_per_ip: str = "20/hour"

    # Jobs and outbox.
    worker_threads: int = Field(default=4, ge=1)
    # On the Redis broker an idle worker polls the delivery and feeds queues, backing off up to
    # this long: the most such a job waits to be picked up (dramatiq's default is 1,000 ms).
    worker_poll_ms: int = Field(default=100, ge=10, le=5000)
    # The same for the queues no buyer waits on (everything but delivery and feeds).
    worker_background_poll_ms: int = Field(default=1000, ge=10, le=5000)
    # Consume jobs inside the API process. Default: only when no broker is configured.
    inprocess_worker: bool | None = None
    outbox_sweep_seconds: float = Field(default=1.0, gt=0)
    # How often worker processes look for expired, stuck, overdue and completable orders.
    sweep_seconds: float = Field(default=5.0, gt=0)
    # A paid order whose delivery has not moved for this long gets its job sent again.
    stuck_delivery_seconds: float = Field(default=30.0, gt=0)

    # Commerce.
    order_reservation_seconds: int = Field(default=15 * 60, ge=10)
    late_payment_grace_seconds: int = Field(default=24 * 3600, ge=0)
    auto_complete_days: float = Field(default=3, gt=0)
    platform_fee_rate: Decimal = Field(default=Decimal("0.05"), ge=0, lt=1)
    order_lookup_limit: str = "10/minute"
    # Delivery promises: the window of a shop's delivery stats, and how far back the sweep
    # looks for late orders still owed their compensation.
    delivery_promise_window_days: float = Field(default=30, gt=0)
    # verifyCardKey: per signed-in user and per client address, against probing guesses.
    card_key_verify_limit_per_user: str = "10/minute"
    card_key_verify_limit_per_ip: str = "30/minute"
    # Payment provider "kpay": HMAC-SHA256 secret, and where buyers are sent to pay.
    kpay_secret: SecretStr | None = None
    kpay_url: str = "http://127.0.0.1:8100"
    supplier_timeout_seconds: float = Field(default=5.0, gt=0)
    # testSupplierConnection per shop: each test is an outbound call the platform makes.
    supplier_test_limit: str = "10/minute"
    # A supplier endpoint is a shop's URL that the platform calls: by default it must resolve to
    # public addresses only, or a shop could have Kameng call its own database, Redis or the
    # cloud's metadata service and read the answer back (testSupplierConnection shows it).
    supplier_allow_private: bool = False

    # Loyalty: points, check-in, tiers, creators (resolvers/points.py, tiers.py, creators.py).
    # The calendar day of check-ins, daily tasks and daily caps is the day in this timezone.
    loyalty_timezone: str = "Asia/Shanghai"
    points_per_yuan_paid: int = Field(default=1, ge=0)  # purchase points per 1.00 paid
    points_check_in: int = Field(default=5, ge=0)
    points_check_in_streak_bonus: int = Field(default=1, ge=0)  # per consecutive day after the first
    points_check_in_streak_bonus_max: int = Field(default=10, ge=0)
    points_showcase: int = Field(default=20, ge=0)
    points_review: int = Field(default=10, ge=0)
    points_like_received: int = Field(default=1, ge=0)
    points_like_daily_cap: int = Field(default=20, ge=0)  # likes that earn points per day
    points_answer_accepted: int = Field(default=15, ge=0)
    points_demand_fulfilled: int = Field(default=30, ge=0)
    points_creator_order: int = Field(default=10, ge=0)  # to a post's author per completed order
    # Points as part payment: this many points are worth 1.00, for at most this share of an order.
    points_per_yuan_value: int = Field(default=100, ge=1)
    points_max_order_share: Decimal = Field(default=Decimal("0.20"), ge=0, le=Decimal("0.9"))
    # Tiers from the rolling 12 months: paid spend OR points earned reaching a threshold.
    tier_silver_spend: Decimal = Field(default=Decimal("500.00"), ge=0)
    tier_gold_spend: Decimal = Field(default=Decimal("2000.00"), ge=0)
    tier_silver_points: int = Field(default=3000, ge=0)
    tier_gold_points: int = Field(default=12000, ge=0)
    tier_sweep_seconds: float = Field(default=3600.0, gt=0)
    # Creators: their share of the platform fee of an order placed from their post.
    creator_fee_share: Decimal = Field(default=Decimal("0.20"), ge=0, le=1)

    # Community: posting limits per user ("N/period"), stricter for accounts younger than
    # new_account_hours. Staff are not limited.
    post_limit: str = "10/hour"
    post_limit_new_account: str = "2/hour"
    comment_limit: str = "60/hour"
    comment_limit_new_account: str = "10/hour"
    new_account_hours: float = Field(default=24, ge=0)
    # Sensitive-word filter: "word:action" pairs (action: block, mask or hold), separated by
    # commas or newlines, matched case-insensitively in titles and bodies. The file, if set,
    # holds more pairs, one a line ("#" starts a comment).
    sensitive_words: str = ""
    sensitive_words_file: Path | None = None

    # Community feeds.
    # FOLLOWING feeds are fanned out (Redis) only to users active within this many days.
    feed_active_days: float = Field(default=7, gt=0)
    # Posts kept per cached FOLLOWING feed; older pages are read from the database.
    feed_max_posts: int = Field(default=800, ge=20)
    # How often job-consuming processes recompute the HOT rank of the last 7 days' posts.
    hot_rank_refresh_seconds: float = Field(default=300, gt=0)

    # -- issue 9: clients
    # Anonymous GET queries of public data: how long browsers and CDNs may reuse the answer.
    http_cache_max_age: int = Field(default=30, ge=0)
    # Browser origins allowed by CORS, comma-separated ("*": any, without credentials).
    # Unset: http://localhost:* and http://127.0.0.1:* in development, none in production.
    cors_origins: str | None = None
    # Apollo's automatic persisted queries: in Redis when configured, else an in-process LRU.
    persisted_queries: bool = True
    persisted_query_cache_size: int = Field(default=2000, ge=1)
    persisted_query_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # A JSON file of {sha256: document}: when set, only these documents run.
    trusted_documents: Path | None = None
    # Most global IDs one `nodes(ids:)` field may ask for.
    max_node_ids: int = Field(default=100, ge=1)

    # -- issue 9: explorer and pages
    # The GraphiQL explorer a browser gets at GET /graphql, served from the app's own assets.
    # Unset: on in development, off in production; true or false decides either way.
    explorer: bool | None = None
    # The live pages /orders/track and /live (they only use the public API).
    live_pages: bool = True

    @property
    def explorer_enabled(self) -> bool:
        return self.env == "development" if self.explorer is None else self.explorer

    # -- issue 10: hostile clients
    # A field selected more often than this in one selection set refuses the document before
    # graphql-core's (quadratic) overlapping-fields rule runs.
    max_repeated_fields: int = Field(default=10, ge=1)
    # Request bodies (413 beyond), JSON nesting (400 beyond) and variables (refused before
    # execution beyond) of /graphql.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=64, ge=4)
    max_variables_bytes: int = Field(default=256 * 1024, ge=1024)
    # A refresh token presented again this soon after it was rotated (a second tab, a retried
    # request) gets the same new pair; later reuse still revokes the session.
    refresh_reuse_grace_seconds: float = Field(default=30, ge=0)
    # How often a WebSocket re-checks its session besides the revocation events it listens to.
    ws_session_check_seconds: float = Field(default=60, gt=0)
    # Addresses of proxies whose X-Forwarded-For is trusted (uvicorn's forwarded_allow_ips);
    # empty: nobody's, the peer address is the client address.
    forwarded_allow_ips: str = Field(
        default="", validation_alias=AliasChoices("KAMENG_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS")
    )

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("database_url", "redis_url", "broker_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _production_needs_services(self) -> Settings:
        if self.env == "production" and not self.database_url:
            raise ConfigurationError(
                "KAMENG_ENV=production needs DATABASE_URL (a PostgreSQL URL); "
                "the SQLite file is for the embedded default only."
            )
        return self

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: jobs run in the API process."""
        return self.broker_url is None

    @property
    def run_inprocess_worker(self) -> bool:
        return self.embedded if self.inprocess_worker is None else self.inprocess_worker

    @property
    def database_dsn(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite://{self.data_dir / 'kameng.sqlite3'}?busy_timeout=10000"

    @property
    def is_sqlite(self) -> bool:
        return self.database_dsn.startswith("sqlite")

    def signing_secret(self) -> str:
        """The JWT signing secret: configured, or generated once on the embedded default."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            value = self.secret_key.get_secret_value()
            if len(value) < 32:
                raise ConfigurationError("KAMENG_SECRET_KEY must be at least 32 characters long.")
            return value
        if self.env == "production":
            raise ConfigurationError(
                "KAMENG_SECRET_KEY is not set. In production every secret comes from the "
                "environment; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return _local_secret(self.data_dir / "secret_key")


    def card_keyring(self) -> tuple[str, dict[str, bytes]]:
        """(active key id, {key id: 32-byte AES key}) for card-key secrets."""
        raw = self.card_key_keys.get_secret_value() if self.card_key_keys else ""
        if not raw:
            if self.env == "production":
                raise ConfigurationError("KAMENG_CARD_KEY_KEYS is not set (\"kid:<base64 32 bytes>\").")
            raw = "local:" + _local_secret(self.data_dir / "card_key_key", lambda: base64.b64encode(secrets.token_bytes(32)).decode())
        ring: dict[str, bytes] = {}
        for item in raw.split(","):
            kid, _, encoded = item.strip().partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                key = b""
            if not kid or len(key) != 32:
                raise ConfigurationError(f"KAMENG_CARD_KEY_KEYS: key {kid!r} must be base64 of 32 bytes.")
            ring[kid] = key
        active = self.card_key_active or next(iter(ring))
        if active not in ring:
            raise ConfigurationError(f"KAMENG_CARD_KEY_ACTIVE={active!r} is not in KAMENG_CARD_KEY_KEYS.")
        return active, ring

    def fingerprint_secret(self) -> bytes:
        if self.fingerprint_key is not None and self.fingerprint_key.get_secret_value():
            return self.fingerprint_key.get_secret_value().encode()
        if self.env == "production":
            raise ConfigurationError("KAMENG_FINGERPRINT_KEY is not set.")
        return _local_secret(self.data_dir / "fingerprint_key").encode()

    def tradelog_key_seed(self) -> bytes:
        """The 32 raw bytes of the Ed25519 key that signs trade-log tree heads."""
        raw = self.tradelog_signing_key.get_secret_value() if self.tradelog_signing_key else ""
        if not raw:
            if self.env == "production":
                raise ConfigurationError("KAMENG_TRADELOG_SIGNING_KEY is not set (base64 of 32 bytes).")
            raw = _local_secret(self.data_dir / "tradelog_signing_key", lambda: base64.b64encode(secrets.token_bytes(32)).decode())
        try:
            seed = base64.b64decode(raw, validate=True)
        except ValueError:
            seed = b""
        if len(seed) != 32:
            raise ConfigurationError("KAMENG_TRADELOG_SIGNING_KEY must be base64 of 32 bytes.")
        return seed


def _local_secret(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(48)) -> str:
    """Read the generated secret, creating it (mode 0600) the first time."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def env_names() -> set[str]:
    """Every environment variable the settings read (docker-compose is checked against it)."""
    names: set[str] = set()
    prefix = Settings.model_config.get("env_prefix", "")
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(f"{prefix}{name}".upper())
    return names


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def configure(settings: Settings | None) -> None:
    """Replace the process-wide settings (tests; None re-reads the environment)."""
    global _settings
    _settings = settings
