"""The query cost model (issue 9): what an operation may cost, and what its result held.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLIncludeDirective, GraphQLList, GraphQLNonNull,
    GraphQLObjectType, GraphQLSchema, GraphQLSkipDirective, InlineFragmentNode, OperationDefinitionNode,
    SelectionSetNode, Undefined, VariableNode, get_named_type, is_abstract_type, is_leaf_type, is_list_type,
    is_scalar_type, is_specified_scalar_type, type_from_ast, value_from_ast,
)
from graphql.execution.values import get_directive_values, get_variable_values

from resolvers.pagination import DEFAULT_PAGE

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
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (skip is not None and skip["if"]) and (include is None or bool(include["if"]))

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


def count_objects(data: dict[str, Any], opaque: set[str]) -> int:
    """Objects (dicts) in a result's data, the data itself excepted, not looking inside
    values under ``opaque`` keys. (graphql-core builds plain dicts and lists: exact type
    checks are enough, and this runs after every operation.)"""
    count = 0
    objects = [data]
    while objects:
        for key, item in objects.pop().items():
            kind = type(item)
            if kind is dict:
                if key not in opaque:
                    count += 1
                    objects.append(item)
            elif kind is list and key not in opaque:
                lists = [item]
                while lists:
                    for element in lists.pop():
                        kind = type(element)
                        if kind is dict:
                            count += 1
                            objects.append(element)
                        elif kind is list:
                            lists.append(element)
    return count
