"""Schema extensions: limits checked before execution, error masking, metrics.

Extensions are passed as classes or factories, never shared instances (Strawberry >=0.316),
and validation rules are built once, so the validation cache can recognise them.

``PreparedDocuments`` does in one extension what MaxTokensLimiter + ParserCache +
AddValidationRules + ValidationCache (+ DisableIntrospection) did in five: its caches are keyed
on the query text rather than on the parsed document (whose deep hash the stock validation
cache computes on every request), and it needs two hooks instead of five (issue 2).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode, parse
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule, ValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.schema.schema import validate_document

from kameng.observability import GRAPHQL_LATENCY, GRAPHQL_REQUESTS, operation_label
from kameng.settings import Settings
from resolvers.errors import UserFacingError
from schema import documents
from schema.outages import MESSAGE as OUTAGE_MESSAGE
from schema.outages import RETRY_AFTER_SECONDS, SERVICE_UNAVAILABLE, is_outage, mark_outage
from schema.cost import QueryCost

log = structlog.get_logger("kameng.graphql")


class SingleOperation(ValidationRule):
    """One operation per document: a request cannot smuggle a second one past the limits."""

    def enter_document(self, node, *_args):  # type: ignore[no-untyped-def]
        operations = [d for d in node.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) > 1:
            self.report_error(GraphQLError("Send one operation per request.", operations[1]))


def mask_error(error: GraphQLError, debug: bool = False) -> GraphQLError:
    """An error as a client may see it: expected failures keep their message and code, an
    outage says so (and flags the request for a 503), anything else is logged and masked.
    Idempotent: a masked error has no original error left."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return error  # syntax, validation, limits: the client's own doing, said plainly
    if isinstance(original, UserFacingError):
        return GraphQLError(
            original.message, error.nodes, error.source, error.positions, error.path,
            original_error=None, extensions={"code": original.code.value},
        )
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if is_outage(original):
        # Retryable, and not a bug: said plainly; over HTTP the status becomes 503.
        mark_outage()
        log.warning("graphql.outage", path=error.path, error=repr(original))
        return GraphQLError(
            OUTAGE_MESSAGE, error.nodes, error.source, error.positions, error.path, original_error=None,
            extensions={"code": SERVICE_UNAVAILABLE, "retryAfter": RETRY_AFTER_SECONDS, "requestId": request_id},
        )
    log.error("graphql.unexpected_error", path=error.path, exc_info=original)
    message = str(error.message) if debug else "Unexpected error."
    return GraphQLError(
        message, error.nodes, error.source, error.positions, error.path,
        original_error=None, extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


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
        return mask_error(error, self.debug)

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


class DocumentCache:
    """Parsed documents by query text, and validation errors by normalised text, shared by the
    requests of one ``build_extensions`` call (the extension instances themselves are per request).

    Bounded LRU. A parse failure is not cached (as with ParserCache). Validation results are
    keyed on (schema, normalised query text, rules): the normalised text (comments and
    insignificant whitespace stripped, ``documents.cache_key``) is computed once per distinct
    query text, so a random comment costs a parse but not a validation; the token limit is
    fixed per cache and the rules are the tuple built once in ``build_extensions``. Before
    graphql-core's rules, the linear checks of ``schema/documents.py`` run: a document they
    refuse never reaches the quadratic overlapping-fields rule.
    """

    def __init__(
        self, rules: tuple[type[ASTValidationRule], ...], max_tokens: int, maxsize: int = 512,
        max_repeated_fields: int = 10,
    ) -> None:
        self.rules, self.max_tokens, self.maxsize = rules, max_tokens, maxsize
        self.max_repeated_fields = max_repeated_fields
        # query text -> (document, the linear checks' errors, normalised text if they passed)
        self._documents: OrderedDict[str, tuple[DocumentNode, list[GraphQLError], str]] = OrderedDict()
        self._errors: OrderedDict[tuple[Any, ...], list[GraphQLError]] = OrderedDict()

    def _remember(self, cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        while len(cache) > self.maxsize:
            cache.popitem(last=False)

    def _entry(self, query: str) -> tuple[DocumentNode, list[GraphQLError], str]:
        entry = self._documents.get(query)
        if entry is None:
            document = parse(query, max_tokens=self.max_tokens)  # GraphQLError on syntax or too many tokens
            refused = documents.shape_errors(document, self.max_repeated_fields)
            entry = (document, refused, "" if refused else documents.cache_key(query))
            self._remember(self._documents, query, entry)
        else:
            with contextlib.suppress(KeyError):  # another thread may have evicted it meanwhile
                self._documents.move_to_end(query)
        return entry

    def document(self, query: str) -> DocumentNode:
        return self._entry(query)[0]

    def errors(
        self, schema: GraphQLSchema, query: str, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
    ) -> list[GraphQLError]:
        _, refused, normalised = self._entry(query)
        if refused:
            return refused
        key = (schema, normalised, rules)
        errors = self._errors.get(key)
        if errors is None:
            errors = validate_document(schema, document, rules) or documents.literal_errors(document)
            self._remember(self._errors, key, errors)
        else:
            with contextlib.suppress(KeyError):
                self._errors.move_to_end(key)
        return errors


class PreparedDocuments(SchemaExtension):
    """Token limit, parse cache, Kameng's validation rules and validation cache in one.

    on_parse: the document for the query text, parsed with the token limit (graphql-core's
    "Document contains more than N tokens" error) or taken from the cache. on_validate: the
    rules (Strawberry's defaults + Kameng's) are set on the execution context, and the errors
    for (schema, query text, rules) are validated once and then taken from the cache.
    If something else provided the document, it is left alone and validated uncached by
    Strawberry with the same rules.
    """

    def __init__(self, cache: DocumentCache, max_variables_bytes: int = 256 * 1024) -> None:
        super().__init__()
        self.cache = cache
        self.max_variables_bytes = max_variables_bytes
        self._ours = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.cache.max_tokens
        if context.graphql_document is None and context.query:
            context.graphql_document = self.cache.document(context.query)
            self._ours = True
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = rules = context.validation_rules + self.cache.rules
        if self._ours and context.pre_execution_errors is None:
            assert context.query is not None and context.graphql_document is not None
            context.pre_execution_errors = self.cache.errors(
                context.schema._schema, context.query, context.graphql_document, rules
            )
        if not context.pre_execution_errors:
            # Per request (variables are not part of the cached document); an empty list
            # keeps Strawberry's own validation from running twice.
            context.pre_execution_errors = documents.variable_errors(
                context.variables, self.max_variables_bytes
            ) or context.pre_execution_errors
        yield


def build_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    rules: list[type[ValidationRule]] = [
        SingleOperation,
        depth_validator(settings.max_query_depth, None),
        alias_validator(settings.max_aliases),
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    cache = DocumentCache(
        tuple(rules), settings.max_query_tokens, maxsize=512, max_repeated_fields=settings.max_repeated_fields
    )
    masking = type("MaskUnexpectedErrors", (MaskUnexpectedErrors,), {"debug": settings.debug})
    return [masking, Metrics, functools.partial(PreparedDocuments, cache, settings.max_variables_bytes), QueryCost.factory(settings)]
