"""Structured logs with a request id, and Prometheus metrics."""

from __future__ import annotations

import logging
import re
import sys

import structlog
from prometheus_client import Counter, Histogram

GRAPHQL_REQUESTS = Counter(
    "kameng_graphql_operations_total", "GraphQL operations by name, type and outcome", ["operation", "type", "outcome"]
)
GRAPHQL_LATENCY = Histogram(
    "kameng_graphql_operation_seconds",
    "GraphQL operation latency by name",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HTTP_REQUESTS = Counter("kameng_http_requests_total", "HTTP requests by route and status", ["route", "status"])

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_OPERATION_LABELS = 500
_seen_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    """Operation names come from clients: bound the label set so metrics cannot be flooded."""
    if not name or not _NAME.match(name):
        return "anonymous"
    if name in _seen_operations:
        return name
    if len(_seen_operations) >= _MAX_OPERATION_LABELS:
        return "other"
    _seen_operations.add(name)
    return name


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=processors + [structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    # Standard-library loggers (uvicorn, dramatiq, tortoise) go through the same renderer.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=processors[:-1], processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Strawberry logs every resolver error itself; ours are logged once, with the request id,
    # by the masking extension, and expected failures are not errors at all.
    logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
