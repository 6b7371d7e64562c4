"""Cheap checks on a document and its variables, run before graphql-core's own rules (issue 10).

graphql-core's OverlappingFieldsCanBeMerged rule compares every pair of fields that share a
response name, so ~450 repeated ``viewer { id }`` cost about a second of event-loop time. The
checks here are linear in the document: they refuse what only an attacker sends (one field
repeated many times in a selection set, a spread of an unknown fragment, which also crashed
the depth limiter) before the quadratic rule ever sees it.

The input boundary refuses NUL characters and lone UTF-16 surrogates in every string a client
sends (argument literals and variables): the database drivers, argon2, the HTML sanitiser and
the rate limiter's keys fail on them with internal errors. Such a request answers a GraphQL
error with ``extensions.code = INVALID_INPUT`` and the argument (or variable) path in
``extensions.field``, and nothing is executed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    ListValueNode,
    Node,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
)
from graphql.utilities import strip_ignored_characters

from resolvers.errors import ErrorCode

#: Text no part of Kameng stores or compares: NUL and unpaired surrogates.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
#: Work units (selections visited) one document may cost the shape check; the token limit
#: keeps honest documents far below this.
_SHAPE_BUDGET = 50_000


def cache_key(query: str) -> str:
    """The query without comments and insignificant whitespace: what validation depends on.

    A random comment or extra blank no longer defeats the validation cache.
    """
    return strip_ignored_characters(query)


def shape_errors(document: DocumentNode, max_repeated: int) -> list[GraphQLError]:
    """Unknown fragment spreads, and response names repeated more than ``max_repeated`` times
    in one selection set (fragments included), or an empty list."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    budget = [_SHAPE_BUDGET]

    def collect(selection_set: SelectionSetNode, counts: Counter[str], spread: set[str]) -> GraphQLError | None:
        for selection in selection_set.selections:
            budget[0] -= 1
            if budget[0] < 0:
                return GraphQLError("The document is too complex.", selection)
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                counts[key] += 1
                if counts[key] > max_repeated:
                    return GraphQLError(
                        f"The field '{key}' is selected more than {max_repeated} times in one selection set.",
                        selection,
                        extensions={"code": "QUERY_TOO_COMPLEX"},
                    )
            elif isinstance(selection, InlineFragmentNode):
                if error := collect(selection.selection_set, counts, spread):
                    return error
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None:
                    return GraphQLError(f"Unknown fragment '{name}'.", selection)
                if name in spread:  # spreading one fragment twice adds no field to compare
                    continue
                spread.add(name)
                if error := collect(fragment.selection_set, counts, spread):
                    return error
        return None

    def walk(node: Node | None) -> GraphQLError | None:
        selection_set = getattr(node, "selection_set", None)
        if selection_set is None:
            return None
        if error := collect(selection_set, Counter(), set()):
            return error
        for selection in selection_set.selections:
            if error := walk(selection):
                return error
        return None

    for definition in document.definitions:
        if isinstance(definition, (OperationDefinitionNode, FragmentDefinitionNode)):
            if error := walk(definition):
                return [error]
    return []


def _invalid(field: str, node: Node | None = None) -> GraphQLError:
    return GraphQLError(
        "Text must not contain NUL characters or unpaired UTF-16 surrogates.",
        node,
        extensions={"code": ErrorCode.INVALID_INPUT.value, "field": field},
    )


def literal_errors(document: DocumentNode) -> list[GraphQLError]:
    """Bad text in argument literals (and variable defaults) of the document."""
    errors: list[GraphQLError] = []

    def value(node: ValueNode, field: str) -> None:
        if isinstance(node, StringValueNode):
            if _BAD_TEXT.search(node.value):
                errors.append(_invalid(field, node))
        elif isinstance(node, ListValueNode):
            for item in node.values:
                value(item, field)
        elif isinstance(node, ObjectValueNode):
            for item in node.fields:
                value(item.value, f"{field}.{item.name.value}")

    def walk(node: Any) -> None:
        if isinstance(node, ArgumentNode):
            value(node.value, node.name.value)
            return
        for key in node.keys:
            if key == "loc":
                continue
            child = getattr(node, key, None)
            if isinstance(child, Node):
                walk(child)
            elif isinstance(child, tuple):
                for item in child:
                    if isinstance(item, Node):
                        walk(item)

    for definition in document.definitions:
        walk(definition)
        for variable in getattr(definition, "variable_definitions", None) or ():
            if variable.default_value is not None:
                value(variable.default_value, variable.variable.name.value)
    return errors[:5]


def variable_errors(variables: dict[str, Any] | None, max_bytes: int) -> list[GraphQLError]:
    """Bad text in the variables, or variables larger than ``max_bytes`` (JSON-ish estimate,
    counted in the same walk rather than by encoding them again)."""
    if not variables:
        return []
    size = 0
    stack: list[tuple[str, Any]] = [(name, value) for name, value in variables.items()]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            size += len(value) + 3
            if _BAD_TEXT.search(value):
                return [_invalid(path)]
        elif isinstance(value, dict):
            size += 2
            for key, item in value.items():
                size += len(key) + 4
                stack.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            size += 2
            stack.extend((path, item) for item in value)
        else:
            size += 8
        if size > max_bytes:
            return [
                GraphQLError(
                    f"The variables are larger than {max_bytes} bytes.",
                    extensions={"code": ErrorCode.INVALID_INPUT.value, "field": path.split(".")[0]},
                )
            ]
    return []
