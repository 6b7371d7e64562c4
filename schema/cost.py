"""Query cost: refused above a maximum or beyond the client's budget before an operation
runs, and reported in ``extensions.cost`` (issue 9). The model is ``schema.cost_model``.

Before execution the extension refuses an operation above ``max_query_cost``
(``QUERY_TOO_COSTLY``), then takes its cost from the client's token bucket (signed-in users
by user id, anonymous clients by address; ``kameng.budget``), refusing it with
``RATE_LIMITED`` and ``retryAfter`` when the bucket lacks the points. ``extensions.cost``
reports requested, actual, maximum, limit, remaining, refillRate and resetAt (README).
``actual`` is the number of objects in the response, counted after execution by walking the
result (a ``resolve`` hook per field would also switch off the executor's fast path). The
budget is charged the requested cost, not the actual one, as GitHub does: a client knows its
charge before it sends, and a refund would cost a second Redis round trip per request.
``actual`` is left out for subscriptions, and where the document names a JSON-valued field
and an object field alike (the walk could not tell them apart). An operation that costs
nothing is neither charged nor reported.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import structlog
from graphql import GraphQLError, GraphQLSchema, OperationType
from strawberry.extensions import SchemaExtension

from kameng import runtime
from kameng.budget import Take, TokenBuckets
from kameng.settings import Settings
from resolvers.errors import ErrorCode
from schema.cost_model import Cost, count_objects, operation_cost
from schema.outages import MESSAGE as OUTAGE_MESSAGE
from schema.outages import RETRY_AFTER_SECONDS, SERVICE_UNAVAILABLE, is_outage, mark_outage

log = structlog.get_logger("kameng.graphql")

QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"


_ABSENT = ("absent",)  # a variable not sent (its default applies), unlike one sent as null


def _values_key(names: tuple[str, ...], variables: dict[str, Any]) -> tuple[Any, ...] | None:
    """What the cost depends on in ``variables``: sizes, lengths of id lists, flags."""
    key: list[Any] = []
    for name in names:
        value = variables.get(name, _ABSENT)
        if isinstance(value, list):
            value = ("len", len(value))
        elif not (value is None or isinstance(value, (int, float, str, tuple))):
            return None
        key.append(value)
    return tuple(key)


class CostCache:
    """Costs by query text, operation name and the values of the variables they depend on,
    shared by the requests of one schema (the cost walk is ~20 µs, a lookup ~1 µs). Bounded
    LRU, like ``schema.extensions.DocumentCache``."""

    def __init__(self, list_size: int, maxsize: int = 1024) -> None:
        self.list_size, self.maxsize = list_size, maxsize
        self._depends: OrderedDict[tuple[str, str | None], tuple[str, ...]] = OrderedDict()
        self._costs: OrderedDict[tuple[Any, ...], Cost] = OrderedDict()

    def _remember(self, cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.maxsize:
            cache.popitem(last=False)

    def cost(self, schema: GraphQLSchema, query: str | None, document: Any, operation_name: str | None,
             variables: dict[str, Any] | None) -> Cost | None:
        variables = variables or {}
        base = (query or "", operation_name)
        names = self._depends.get(base) if query else None
        if names is not None:
            key = _values_key(names, variables)
            cached = self._costs.get((base, key)) if key is not None else None
            if cached is not None:
                return cached
        cost = operation_cost(schema, document, operation_name, variables, self.list_size)
        if cost is None or not query:
            return cost
        names = tuple(sorted(cost.variables))
        self._remember(self._depends, base, names)
        key = _values_key(names, variables)
        if key is not None:
            self._remember(self._costs, (base, key), cost)
        return cost


class QueryCost(SchemaExtension):
    """Costs each operation before execution and refuses it above the maximum. Made inside the
    event loop (every request the app answers) it is a ``BudgetedQueryCost``; outside it
    (``execute_sync``) it has no budget, whose I/O needs a coroutine hook, which synchronous
    execution refuses."""

    def __init__(self, settings: Settings, costs: CostCache) -> None:
        super().__init__()
        self.settings, self.costs = settings, costs
        self.cost: Cost | None = None
        self.take: Take | None = None
        self.actual: int | None = None
        self._reported = False

    def __new__(cls, *_args: Any) -> QueryCost:
        # Requests run in the event loop and get the budget. Outside it (execute_sync) the
        # budget's coroutine hook could not run: that execution gets the class without one.
        if cls is QueryCost:
            try:
                asyncio.get_running_loop()
                cls = BudgetedQueryCost
            except RuntimeError:
                pass
        return super().__new__(cls)

    @classmethod
    def factory(cls, settings: Settings) -> functools.partial[QueryCost]:
        return functools.partial(cls, settings, CostCache(settings.query_cost_list_size))

    def _price(self) -> None:
        """Sets ``self.cost``; raises QUERY_TOO_COSTLY above the maximum."""
        context = self.execution_context
        document = context.graphql_document
        if document is None or context.pre_execution_errors:
            return
        cost = self.costs.cost(context.schema._schema, context.query, document, context.operation_name,
                               context.variables)
        # Free operations ({ __typename }) are neither charged nor reported: a liveness probe
        # costs no Redis round trip and keeps its bare answer.
        self.cost = cost if cost is not None and cost.requested > 0 else None
        if self.cost is not None and self.cost.requested > self.settings.max_query_cost:
            requested, maximum = self.cost.requested, self.settings.max_query_cost
            raise GraphQLError(
                f"This operation would cost {requested} points; the most one operation may cost is {maximum}. "
                "Ask for smaller pages (first/last) or split it.",
                extensions={"code": QUERY_TOO_COSTLY, "cost": requested, "maximumCost": maximum},
            )

    def _count(self) -> None:
        context = self.execution_context
        data = getattr(context.result, "data", None)
        if (
            self.cost is not None and data is not None and self.cost.countable
            and context.operation_type is not OperationType.SUBSCRIPTION
        ):
            self.actual = count_objects(data, self.cost.opaque_keys)

    def on_execute(self) -> Iterator[None]:
        self._price()
        yield
        self._count()

    def get_results(self) -> dict[str, Any]:
        if self.cost is None or self._reported:
            return {}
        self._reported = True  # a subscription reports its cost with its first result only
        report: dict[str, Any] = {"requested": self.cost.requested}
        if self.actual is not None:
            report["actual"] = self.actual
        report["maximum"] = self.settings.max_query_cost
        take = self.take
        if take is not None:
            report.update(
                limit=take.capacity,
                remaining=int(take.remaining),
                refillRate=round(take.rate, 3),
                resetAt=datetime.fromtimestamp(take.full_at, UTC).isoformat(timespec="milliseconds").replace(
                    "+00:00", "Z"
                ),
            )
        return {"cost": report}


class BudgetedQueryCost(QueryCost):
    """QueryCost, and the cost taken from the client's budget before execution."""

    def _buckets(self) -> TokenBuckets | None:
        settings = self.settings
        if settings.query_budget <= 0 or not runtime.is_started():
            return None
        rt = runtime.current()
        buckets = rt.local.get("query_budget")
        if buckets is None or buckets.redis is not rt.redis:
            rate = settings.query_budget / settings.query_budget_refill_seconds
            buckets = TokenBuckets(settings.query_budget, rate, rt.redis, f"{settings.namespace}:cost")
            rt.local["query_budget"] = buckets
        return buckets

    @staticmethod
    def _client(context: Any) -> str:
        actor = getattr(context, "actor", None)
        user_id = getattr(actor, "user_id", None)
        if user_id is not None:
            return f"user:{user_id}"
        return f"ip:{getattr(actor, 'ip', '') or '-'}"

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        self._price()
        buckets = self._buckets() if self.cost is not None else None
        if self.cost is not None and buckets is not None:
            context, requested = self.execution_context, self.cost.requested
            try:
                self.take = await buckets.take(self._client(context.context), requested)
            except Exception as error:
                # Raised from a hook, this would reach the client unmasked (with Redis's
                # address in it): an unreachable budget store is an outage, said as one, and
                # the operation does not run unmetered.
                if not is_outage(error):
                    raise
                mark_outage()
                log.warning("graphql.outage", stage="query budget", error=repr(error))
                raise GraphQLError(
                    OUTAGE_MESSAGE, extensions={"code": SERVICE_UNAVAILABLE, "retryAfter": RETRY_AFTER_SECONDS}
                ) from None
            if not self.take.taken:
                retry, left = self.take.retry_after(requested), int(self.take.remaining)
                response = getattr(context.context, "response", None)
                if hasattr(response, "status_code") and hasattr(response, "headers"):  # HTTP, not a WebSocket
                    response.headers["Retry-After"] = str(retry)
                raise GraphQLError(
                    f"This operation costs {requested} points and {left} are left of this client's budget; "
                    f"retry in {retry} s.",
                    extensions={
                        "code": ErrorCode.RATE_LIMITED.value, "cost": requested, "remaining": left, "retryAfter": retry,
                    },
                )
        yield
        self._count()
