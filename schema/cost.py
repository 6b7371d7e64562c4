"""Query cost: what an operation may cost, refused above a maximum or beyond the client's
budget before it runs, and reported in ``extensions.cost`` (issue 9).

The model (the most objects the response can hold), computed from the validated document,
the schema's types and the operation's variables:

* a field of an object, interface or union type costs 1, plus what is selected under it;
  scalar and enum fields cost nothing (their object has been paid for);
* a list field multiplies the cost of one item by its size: its ``first``/``last`` argument,
  ``len(ids)`` for ``nodes(ids:)``, the page size of the connection it belongs to (the
  ``edges`` of ``products(first: 20)`` hold 20 items; a connection without ``first``/``last``
  pages by ``resolvers.pagination.DEFAULT_PAGE``), else ``query_cost_list_size``;
* a field of an abstract type costs what its most expensive possible type would;
* ``__schema``/``__type`` cost 1 (introspection reads no data), ``__typename`` nothing.

``products(first: 20) { edges { node { id merchant { id } } } }`` costs 1 (the connection)
+ 20 x (edge 1 + node 1 + merchant 1) = 61. A subscription is costed once, at subscribe.

Before execution the extension refuses an operation above ``max_query_cost``
(``QUERY_TOO_COSTLY``), then takes its cost from the client's token bucket (signed-in users
by user id, anonymous clients by address; ``kameng.budget``), refusing it with
``RATE_LIMITED`` and ``retryAfter`` when the bucket lacks the points. The response says

    "extensions": {"cost": {"requested": 61, "actual": 13, "maximum": 5000, "limit": 50000,
                            "remaining": 49939, "refillRate": 833.333, "resetAt": "..."}}

``actual`` is the number of objects in the response, counted after execution by walking the
result (a ``resolve`` hook per field would also switch off the executor's fast path). The
budget is charged the requested cost, not the actual one, as GitHub does: a client knows its
charge before it sends, and a refund would cost a second Redis round trip per request.
``actual`` is left out for subscriptions, and where the document names a JSON-valued field
and an object field alike (the walk could not tell them apart).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import (
    FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLError, GraphQLIncludeDirective, GraphQLList,
    GraphQLNonNull, GraphQLObjectType, GraphQLSchema, GraphQLSkipDirective, InlineFragmentNode,
    OperationDefinitionNode, OperationType, SelectionSetNode, Undefined, VariableNode, get_named_type,
    is_abstract_type, is_leaf_type, is_list_type, is_scalar_type, is_specified_scalar_type, type_from_ast,
    value_from_ast,
)
from graphql.execution.values import get_directive_values, get_variable_values
from strawberry.extensions import SchemaExtension

from kameng import runtime
from kameng.budget import Take, TokenBuckets
from kameng.settings import Settings
from resolvers.errors import ErrorCode
from resolvers.pagination import DEFAULT_PAGE

QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
_SIZE_ARGUMENTS = ("first", "last")


@dataclass
class Cost:
    requested: int
    # Response keys of fields whose values may be JSON objects, and of object fields: the
    # result walk skips the former, and gives up when a key is both.
    opaque_keys: set[str] = field(default_factory=set)
    object_keys: set[str] = field(default_factory=set)
    # The variables the cost depends on (sizes, @skip/@include): the cache key.
    variables: set[str] = field(default_factory=set)

    @property
    def countable(self) -> bool:
        return not (self.opaque_keys & self.object_keys)


class _Walk:
    """One costing of one operation (memoised per selection and type: fragments recur)."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: Any,
                 list_size: int) -> None:
        self.schema, self.fragments, self.variables, self.list_size = schema, fragments, variables, list_size
        self.cost = Cost(0)
        self._memo: dict[tuple[Any, ...], int] = {}

    def _included(self, node: Any) -> bool:
        if not node.directives:
            return True
        for directive in node.directives:
            for argument in directive.arguments or ():
                if isinstance(argument.value, VariableNode):
                    self.cost.variables.add(argument.value.name.value)
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip["if"]:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return include is None or bool(include["if"])

    def _applies(self, condition: Any, type_: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        conditional = type_from_ast(self.schema, condition)
        if conditional is type_:
            return True
        return is_abstract_type(conditional) and self.schema.is_sub_type(conditional, type_)  # type: ignore[arg-type]

    def _collect(self, type_: GraphQLObjectType, sets: list[SelectionSetNode], into: dict[str, list[FieldNode]],
                 seen: set[str]) -> None:
        for selection_set in sets:
            for selection in selection_set.selections:
                if not self._included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    into.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    if self._applies(selection.type_condition, type_):
                        self._collect(type_, [selection.selection_set], into, seen)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is not None and name not in seen and self._applies(fragment.type_condition, type_):
                        seen.add(name)
                        self._collect(type_, [fragment.selection_set], into, seen)

    def selections(self, type_: GraphQLObjectType, sets: list[SelectionSetNode], page: int | None) -> int:
        key = (tuple(id(s) for s in sets), type_.name, page)
        cost = self._memo.get(key)
        if cost is None:
            fields: dict[str, list[FieldNode]] = {}
            self._collect(type_, sets, fields, set())
            cost = 0
            for response_key, nodes in fields.items():
                cost += self._field(type_, response_key, nodes, page)
            self._memo[key] = cost
        return cost

    def _argument(self, field_def: Any, node: FieldNode, name: str) -> Any:
        definition = field_def.args.get(name)
        if definition is None:
            return None
        for argument in node.arguments or ():
            if argument.name.value == name:
                if isinstance(argument.value, VariableNode):
                    self.cost.variables.add(argument.value.name.value)
                    return self.variables.coerced.get(argument.value.name.value)
                value = value_from_ast(argument.value, definition.type, self.variables.coerced)
                return None if value is Undefined else value
        return None if definition.default_value is Undefined else definition.default_value

    def _size(self, field_def: Any, node: FieldNode) -> int | None:
        """The size the arguments give a list or connection, if they give one."""
        sizes = [value for name in _SIZE_ARGUMENTS if isinstance(value := self._argument(field_def, node, name), int)]
        if sizes:
            return max(0, max(sizes))
        ids = self._argument(field_def, node, "ids")
        return len(ids) if isinstance(ids, list) else None

    def _field(self, parent: GraphQLObjectType, response_key: str, nodes: list[FieldNode], page: int | None) -> int:
        name = nodes[0].name.value
        if name.startswith("__"):
            return 1 if name in ("__schema", "__type") else 0
        field_def = parent.fields[name]  # the document is valid
        type_ = field_def.type.of_type if isinstance(field_def.type, GraphQLNonNull) else field_def.type
        named = get_named_type(type_)
        if is_leaf_type(named):
            if is_scalar_type(named) and not is_specified_scalar_type(named):  # type: ignore[arg-type]
                self.cost.opaque_keys.add(response_key)
            return 0
        self.cost.object_keys.add(response_key)
        size = self._size(field_def, nodes[0])
        items, child_page = 1, None
        if is_list_type(type_):
            items = size if size is not None else (page if page is not None else self.list_size)
            inner = type_.of_type  # type: ignore[union-attr]
            while isinstance(inner, (GraphQLList, GraphQLNonNull)):  # a list of lists: each inner one unsized
                if isinstance(inner, GraphQLList):
                    items *= self.list_size
                inner = inner.of_type
        elif any(argument in field_def.args for argument in _SIZE_ARGUMENTS):  # a connection
            child_page = size if size is not None else DEFAULT_PAGE
        sets = [node.selection_set for node in nodes if node.selection_set is not None]
        types = self.schema.get_possible_types(named) if is_abstract_type(named) else [named]  # type: ignore[arg-type]
        each = 1 + max((self.selections(t, sets, child_page) for t in types), default=0)
        return items * each


def operation_cost(schema: GraphQLSchema, document: Any, operation_name: str | None, variables: dict[str, Any] | None,
                   list_size: int) -> Cost | None:
    """The cost of the operation, or None when its variables do not coerce (execution then
    refuses it before resolving anything)."""
    operation: OperationDefinitionNode | None = None
    fragments: dict[str, FragmentDefinitionNode] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if operation_name is None or (definition.name is not None and definition.name.value == operation_name):
                operation = operation or definition
        elif isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
    if operation is None:
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        return None
    walk = _Walk(schema, fragments, coerced, list_size)
    walk.cost.requested = walk.selections(root, [operation.selection_set], None)
    return walk.cost


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


def count_objects(data: Any, opaque: set[str]) -> int:
    """Objects (dicts) in a result's data, the data itself excepted, not looking inside
    values under ``opaque`` keys."""
    count = 0
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict):
                    if key in opaque:
                        continue
                    count += 1
                    stack.append(item)
                elif isinstance(item, list) and key not in opaque:
                    stack.append(item)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    count += 1
                    stack.append(item)
                elif isinstance(item, list):
                    stack.append(item)
    return count


class QueryCost(SchemaExtension):
    """Costs each operation before execution: refuses it, or charges the client's budget."""

    def __init__(self, settings: Settings, costs: CostCache) -> None:
        super().__init__()
        self.settings, self.costs = settings, costs
        self.cost: Cost | None = None
        self.take: Take | None = None
        self.actual: int | None = None
        self._reported = False

    @classmethod
    def factory(cls, settings: Settings) -> functools.partial[QueryCost]:
        return functools.partial(cls, settings, CostCache(settings.query_cost_list_size))

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
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            self.cost = self.costs.cost(
                context.schema._schema, context.query, document, context.operation_name, context.variables
            )
        if self.cost is not None:
            requested, maximum = self.cost.requested, self.settings.max_query_cost
            if requested > maximum:
                raise GraphQLError(
                    f"This operation would cost {requested} points; the most one operation may cost is {maximum}. "
                    "Ask for smaller pages (first/last) or split it.",
                    extensions={"code": QUERY_TOO_COSTLY, "cost": requested, "maximumCost": maximum},
                )
            buckets = self._buckets()
            if buckets is not None:
                self.take = await buckets.take(self._client(context.context), requested)
                if not self.take.taken:
                    retry = self.take.retry_after(requested)
                    response = getattr(context.context, "response", None)
                    headers = getattr(response, "headers", None)
                    if headers is not None and hasattr(response, "status_code"):  # HTTP, not a WebSocket
                        headers["Retry-After"] = str(retry)
                    raise GraphQLError(
                        f"This operation costs {requested} points and {int(self.take.remaining)} are left of "
                        f"this client's budget; retry in {retry} s.",
                        extensions={
                            "code": ErrorCode.RATE_LIMITED.value, "cost": requested,
                            "remaining": int(self.take.remaining), "retryAfter": retry,
                        },
                    )
        yield
        result = context.result
        data = getattr(result, "data", None)
        if (
            self.cost is not None and data is not None and self.cost.countable
            and context.operation_type is not OperationType.SUBSCRIPTION
        ):
            self.actual = count_objects(data, self.cost.opaque_keys)

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
