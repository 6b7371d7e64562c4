"""Schema extensions: limits checked before execution, error masking, metrics.

Extensions are passed as classes or factories, never shared instances (Strawberry >=0.316),
and validation rules are built once, so the validation cache can recognise them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from graphql import GraphQLError, OperationDefinitionNode
from graphql.validation import ValidationRule
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from kameng.observability import GRAPHQL_LATENCY, GRAPHQL_REQUESTS, operation_label
from kameng.settings import Settings
from resolvers.errors import UserFacingError

log = structlog.get_logger("kameng.graphql")


class SingleOperation(ValidationRule):
    """One operation per document: a request cannot smuggle a second one past the limits."""

    def enter_document(self, node, *_args):  # type: ignore[no-untyped-def]
        operations = [d for d in node.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) > 1:
            self.report_error(GraphQLError("Send one operation per request.", operations[1]))


class MaskUnexpectedErrors(SchemaExtension):
    """Expected failures keep their code; anything else is masked (outside debug) and logged
    with the request id that the client also receives."""

    debug = False

    def _process(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        # The same error can appear in both the result and the pre-execution errors: handle
        # (and log) each once.
        for error in errors:
            if id(error) not in self._done:
                self._done[id(error)] = self._mask(error)
        return [self._done[id(error)] for error in errors]

    def _mask(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return error  # syntax, validation, limits: the client's own doing, said plainly
        if isinstance(original, UserFacingError):
            return GraphQLError(
                original.message, error.nodes, error.source, error.positions, error.path,
                original_error=None, extensions={"code": original.code.value},
            )
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        log.error("graphql.unexpected_error", path=error.path, exc_info=original)
        message = str(error.message) if self.debug else "Unexpected error."
        return GraphQLError(
            message, error.nodes, error.source, error.positions, error.path,
            original_error=None, extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )

    def __init__(self) -> None:
        super().__init__()
        self._done: dict[int, GraphQLError] = {}

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = self._process(result.errors)
        pre = self.execution_context.pre_execution_errors
        if pre:
            self.execution_context.pre_execution_errors = self._process(pre)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each event of a subscription, before it reaches the client."""
        if getattr(result, "errors", None):
            result.errors = self._process(result.errors)
        yield None


class Metrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        name = operation_label(context.operation_name)
        try:
            op_type = context.operation_type.value
        except Exception:  # the document did not parse
            op_type = "invalid"
        result = context.result
        failed = bool(context.pre_execution_errors) or bool(result is not None and getattr(result, "errors", None))
        GRAPHQL_REQUESTS.labels(name, op_type, "error" if failed else "ok").inc()
        GRAPHQL_LATENCY.labels(name).observe(time.perf_counter() - started)


def build_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    rules: list[type[ValidationRule]] = [
        SingleOperation,
        depth_validator(settings.max_query_depth, None),
        alias_validator(settings.max_aliases),
    ]
    masking = type("MaskUnexpectedErrors", (MaskUnexpectedErrors,), {"debug": settings.debug})
    extensions: list[Callable[[], SchemaExtension]] = [
        masking,
        Metrics,
        functools.partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
        functools.partial(ParserCache, maxsize=512),
        functools.partial(AddValidationRules, rules),
        functools.partial(ValidationCache, maxsize=512),
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return extensions
