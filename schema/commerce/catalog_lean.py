"""The lean product page in the graph (issue 15): which selections it serves, and its nodes.

Why: on the uncached catalog page, Tortoise models and per-field resolvers cost more than
the SQL. ``resolvers/commerce/catalog_lean.py`` reads the page as plain rows in one
statement; here each row becomes a ``Product`` node holding exactly the attributes the
selection reads (``price`` as a ``Money``, ``stock`` and ``merchant`` as ready values that
schema/executor.py reads without calling the resolvers).

So a node is complete only for the fields below: ``lean_selection`` walks the query's
selection of the connection and answers None (the ORM path) for anything else -- another
field, arguments, directives, a fragment on another type. The walk is done once per
parsed document (documents are cached by query text) and remembered.
"""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode

from resolvers.commerce.catalog_lean import ProductRow
from resolvers.pagination import Page
from schema.base import Connection, Money, graph_type
from schema.context import Info
from subscriptions import cache_tags

# (type name, {field: sub-shape or None for a leaf}). Node fields: each one a ProductRow
# attribute the node is given (price, stock and merchant built from several).
_MONEY = ("Money", {"amount": None, "currency": None})
_MERCHANT = ("Merchant", {"id": None, "name": None})
_NODE = ("Product", {
    "id": None, "title": None, "price": _MONEY, "stock": None, "merchant": _MERCHANT, "deliveryKind": None,
    "status": None, "soldCount": None, "reviewCount": None, "minQuantity": None, "maxQuantity": None,
})
_PAGE_INFO = ("PageInfo", {"hasNextPage": None, "hasPreviousPage": None, "startCursor": None, "endCursor": None})
_CONNECTION = ("ProductConnection", {
    "edges": ("ProductEdge", {"cursor": None, "node": _NODE}),
    "pageInfo": _PAGE_INFO,
})

_CACHE_MAX = 512
# id of the first field node -> (the field nodes, kept alive so ids stay unique; the answer)
_SELECTIONS: dict[int, tuple[tuple[Any, ...], frozenset[str] | None]] = {}


def _fields(
    selection_set: SelectionSetNode | None, fragments: dict[str, Any], type_name: str
) -> list[FieldNode] | None:
    """The field nodes of a selection on ``type_name``, fragments spread; None if any part of it
    is conditional (a directive, a type condition on another type, fragment arguments)."""
    if selection_set is None:
        return None
    found: list[FieldNode] = []
    for selection in selection_set.selections:
        if selection.directives:
            return None
        inner: list[FieldNode] | None
        if isinstance(selection, FieldNode):
            found.append(selection)
            continue
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is not None and condition.name.value != type_name:
                return None
            inner = _fields(selection.selection_set, fragments, type_name)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if (
                fragment is None or fragment.directives or getattr(fragment, "variable_definitions", None)
                or getattr(selection, "arguments", None) or fragment.type_condition.name.value != type_name
            ):
                return None
            inner = _fields(fragment.selection_set, fragments, type_name)
        else:
            return None
        if inner is None:
            return None
        found.extend(inner)
    return found


def _served(nodes: list[FieldNode], shape: tuple[str, dict[str, Any]], fragments: dict[str, Any],
            node_fields: set[str]) -> bool:
    """Whether every field is one the shape serves, plainly; collects the node's fields."""
    type_name, fields = shape
    for node in nodes:
        if node.arguments or node.directives:
            return False
        name = node.name.value
        if name == "__typename":
            continue
        if name not in fields:
            return False
        if shape is _NODE:
            node_fields.add(name)
        sub = fields[name]
        if sub is None:
            if node.selection_set is not None:
                return False
            continue
        inner = _fields(node.selection_set, fragments, sub[0])
        if inner is None or not _served(inner, sub, fragments, node_fields):
            return False
    return True


def lean_selection(info: Info) -> frozenset[str] | None:
    """The node fields the connection's selection reads, if a lean page serves all of it."""
    raw = info._raw_info
    field_nodes = tuple(raw.field_nodes)
    entry = _SELECTIONS.get(id(field_nodes[0]))
    # The nodes are kept alive with their entry, so the same id is the same node (and document).
    if entry is not None and len(entry[0]) == len(field_nodes) and all(
        a is b for a, b in zip(entry[0], field_nodes, strict=True)
    ):
        return entry[1]
    node_fields: set[str] = set()
    served = True
    for field_node in field_nodes:
        inner = _fields(field_node.selection_set, raw.fragments, _CONNECTION[0])
        served = served and inner is not None and _served(inner, _CONNECTION, raw.fragments, node_fields)
    answer = frozenset(node_fields) if served else None
    if len(_SELECTIONS) >= _CACHE_MAX:
        _SELECTIONS.clear()
    _SELECTIONS[id(field_nodes[0])] = (field_nodes, answer)
    return answer


def lean_connection(page: Page[ProductRow], selected: frozenset[str]) -> Any:
    """The connection of a lean page; records the cache tags the ORM path's resolvers would."""
    product_type, merchant_type = graph_type("Product"), graph_type("Merchant")
    rows = page.items
    tags = [cache_tags.product(row.id) for row in rows]
    if "stock" in selected:
        tags += [cache_tags.stock(row.id) for row in rows]
    if "merchant" in selected:
        tags += [cache_tags.merchant(row.merchant_id) for row in rows]
    cache_tags.record(*tags)
    shops: dict[int, Any] = {}
    new = object.__new__

    def node_of(row: Any) -> Any:
        shop = shops.get(row.merchant_id)
        if shop is None:
            # Only the fields lean_selection lets through are read from it.
            shop = shops[row.merchant_id] = new(merchant_type)
            shop.__dict__.update(id=row.merchant_id, name=row.merchant_name)
        # A Product without its dataclass __init__ (which needs every column and the model):
        # the attributes the served fields read, and the ready values of stock and merchant.
        node = new(product_type)
        node.__dict__.update(
            id=row.id, title=row.title, price=Money(amount=row.price, currency=row.currency),
            delivery_kind=row.delivery_kind, status=row.status, sold_count=row.sold_count,
            review_count=row.review_count, min_quantity=row.min_quantity, max_quantity=row.max_quantity,
            _ready_stock=row.stock, _ready_merchant=shop,
        )
        return node

    return Connection.of(page, node_of)
