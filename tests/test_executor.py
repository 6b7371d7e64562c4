"""schema.executor.FastLeafExecutionContext answers exactly as Strawberry's stock execution
context: the same ``data`` (key order included) and the same ``errors``, for a corpus of queries
against the real schema (with data) and against a throwaway schema built to fail in every way
a plain field can (nulls, overflow, bad enum values, exceptions, awaitables).

It also checks that the fast path is actually taken, and that graphql-core and Strawberry are
the versions whose internals schema/executor.py was checked against.
"""

from __future__ import annotations

import asyncio
import enum
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib.metadata import version
from typing import Any

import graphql
import pytest
import strawberry
from graphql import get_introspection_query
from starlette.requests import Request
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission
from strawberry.relay import GlobalID
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.executor import GRAPHQL_CORE_VERSION, STRAWBERRY_VERSION, FastLeafExecutionContext, ready


def _outcome(result: Any) -> tuple[str, list[dict[str, Any]] | None]:
    """data as JSON text (so that key order counts), errors as the client sees them."""
    data = json.dumps(result.data, default=str)
    errors = [error.formatted for error in result.errors] if result.errors else None
    return data, errors


def test_pinned_versions_are_installed() -> None:
    # schema/executor.py overrides graphql-core internals: re-read it before moving these.
    assert graphql.__version__ == GRAPHQL_CORE_VERSION
    assert version("strawberry-graphql") == STRAWBERRY_VERSION


# -- a throwaway schema: every way a plain field can go wrong ------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Deny(BasePermission):
    message = "Denied."

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Item:
    id: strawberry.ID
    name: str
    count: int
    ratio: float
    flag: bool
    maybe: str | None
    maybe_count: int | None
    color: Color
    maybe_color: Color | None
    price: Decimal
    at: datetime
    day: date
    tags: list[str]
    secret: str | None = strawberry.field(permission_classes=[Deny], default="hidden")
    child: Item | None = None

    @strawberry.field
    def scaled(self, factor: int = 2) -> int:
        return self.count * factor

    @strawberry.field
    async def shout(self) -> str:
        await asyncio.sleep(0)
        return f"item {self.id}".upper()

    @strawberry.field
    def broken(self) -> str | None:
        raise RuntimeError("resolver failed")

    # Ready values (issue 15): what the resolver returns is the attribute when the item has it,
    # so the stock executor (which calls the resolver) and the fast path (which reads the
    # attribute) must agree, errors included.
    @strawberry.field(metadata=ready("_ready_label"))
    def label(self) -> str:
        return getattr(self, "_ready_label", f"label {self.id}")  # type: ignore[no-any-return]

    @strawberry.field(metadata=ready("_ready_twin"))
    def twin(self) -> Item:
        return getattr(self, "_ready_twin", self)  # type: ignore[no-any-return]


class RaisingName(Item):
    """An Item whose ``name`` attribute raises when read (a property gone wrong)."""

    @property  # type: ignore[override]
    def name(self) -> str:
        raise ValueError("cannot read name")

    @name.setter
    def name(self, value: str) -> None:
        pass


def _item(i: int, **changes: Any) -> Item:
    values: dict[str, Any] = {
        "id": strawberry.ID(str(i)),
        "name": f"item {i}",
        "count": i * 7,
        "ratio": i / 4,
        "flag": i % 2 == 0,
        "maybe": None if i % 2 else f"maybe {i}",
        "maybe_count": None if i % 3 else i,
        "color": Color.RED if i % 2 else Color.GREEN,
        "maybe_color": None if i % 3 else Color.GREEN,
        "price": Decimal(f"{i}.{i:02d}"),
        "at": datetime(2025, 1, 1 + i, 12, 30, tzinfo=UTC),
        "day": date(2025, 2, 1 + i),
        "tags": [f"t{i}", "x"],
    }
    values.update(changes)
    return Item(**values)


class _later:  # noqa: N801
    """An awaitable attribute value (no coroutine: never awaiting it is fine)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self):  # type: ignore[no-untyped-def]
        yield from asyncio.sleep(0).__await__()
        return self.value


def _ready(item: Item, **values: Any) -> Item:
    for name, value in values.items():
        setattr(item, f"_ready_{name}", value)
    return item


def _good() -> list[Item]:
    items = [_item(i) for i in range(5)]
    items[0].child = _item(10, child=_item(11))
    _ready(items[1], label="ready label 1")
    _ready(items[2], twin=_item(26, child=_item(27)))
    return items


def _bad() -> list[Item]:
    """Made afresh per run."""
    raising = RaisingName(**{**_item(20).__dict__})
    return [
        _item(1),
        _item(2, name=None),  # null in a non-null field
        _item(3, count=2**40),  # Int overflow
        _item(4, maybe_count=2**31),  # overflow in a nullable field
        _item(5, color="purple"),  # not a member of the enum
        _item(6, maybe_color="RED"),  # a string, not an enum value
        _item(7, name=RuntimeError("an exception as the value")),
        _item(8, name=_later("awaited name"), maybe=_later(None), count=_later(3)),
        _item(9, ratio="not a float"),
        _item(10, at="not a datetime"),
        _item(11, flag="yes"),
        _item(12, maybe=123),  # an int where a String is expected: coerced to "123"
        _item(13, count=True),  # a bool where an Int is expected: coerced to 1
        _item(14, count=3.0, ratio=2),  # float with an int value, int as a float
        raising,
        _item(15, child=_item(16, name=None)),  # the child becomes null
        _ready(_item(17), label=None),  # a ready null in a non-null field
        _ready(_item(18), twin=None),  # ... in a non-null object field
        _ready(_item(19), label=_later("awaited label"), twin=_later(_item(12))),
        _ready(_item(21), twin=_item(22, name=None)),  # an error inside a ready object
        _ready(_item(23), label=RuntimeError("an exception as the ready value")),
        _ready(_item(24), label=2**40, twin=_ready(_item(25), label=7)),  # coerced: "1099511627776", "7"
    ]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return _good()

    @strawberry.field
    def bad_items(self) -> list[Item | None]:
        return _bad()

    @strawberry.field
    def strict_bad_items(self) -> list[Item]:
        return _bad()

    @strawberry.field
    async def async_items(self, first: int = 3) -> list[Item]:
        await asyncio.sleep(0)
        return _good()[:first]

    @strawberry.field
    def item(self, id: strawberry.ID) -> Item | None:
        return next((i for i in _good() if i.id == id), None)

    @strawberry.field
    def color(self) -> Color:
        return Color.GREEN


ALL_FIELDS = "id name count ratio flag maybe maybeCount color maybeColor price at day tags"

TINY_CORPUS: list[tuple[str, dict[str, Any] | None]] = [
    (f"{{ items {{ {ALL_FIELDS} }} }}", None),
    (f"{{ items {{ {ALL_FIELDS} child {{ {ALL_FIELDS} child {{ id name }} }} }} }}", None),
    ("{ items { __typename a: name b: name name c: count } color __typename }", None),
    ("{ items { ...F name ... on Item { count color } } } fragment F on Item { id name price at }", None),
    ("{ items { name count @skip(if: true) ratio @include(if: false) flag @include(if: true) } }", None),
    (
        "query($s: Boolean!, $i: Boolean!) { items { name @skip(if: $s) count @include(if: $i) id } }",
        {"s": True, "i": True},
    ),
    ("query($s: Boolean!) { items { name @skip(if: $s) name } }", {"s": True}),
    ("{ items { id scaled scaled3: scaled(factor: 3) shout name } }", None),
    ("query($f: Int!) { items { scaled(factor: $f) count } }", {"f": 5}),
    (f"{{ asyncItems(first: 2) {{ {ALL_FIELDS} shout }} }}", None),
    ('{ item(id: "3") { id name } missing: item(id: "99") { id } }', None),
    ("{ items { id secret name } }", None),
    ("{ items { name broken count } }", None),
    (f"{{ badItems {{ {ALL_FIELDS} }} }}", None),
    (f"{{ badItems {{ broken {ALL_FIELDS} shout child {{ id name }} }} }}", None),
    (f"{{ strictBadItems {{ {ALL_FIELDS} }} }}", None),
    ("{ badItems { maybe maybeCount maybeColor ratio at flag } }", None),
    ("{ badItems { name maybe count } items { name } }", None),
    ("{ items { id label twin { id name label child { id } twin { id } } } }", None),
    ("{ badItems { id label twin { id name label } } }", None),
    ("{ strictBadItems { label twin { name } } }", None),
    ("{ items { twin { ... on Item { id } ...T } } } fragment T on Item { label }", None),
]


class CountResolves(SchemaExtension):
    """A resolver middleware: the fast path must stand aside and let it see every field."""

    def resolve(self, _next, root, info, *args, **kwargs):  # type: ignore[no-untyped-def]
        return _next(root, info, *args, **kwargs)


def _tiny(executor: type | None, extensions: list[Any] | None = None) -> strawberry.Schema:
    return strawberry.Schema(query=Query, extensions=extensions or [], execution_context_class=executor)


@pytest.mark.parametrize(("query", "variables"), TINY_CORPUS)
async def test_tiny_schema_same_answers(query: str, variables: dict[str, Any] | None) -> None:
    fast, stock = _tiny(FastLeafExecutionContext), _tiny(None)
    assert stock.execution_context_class is StrawberryGraphQLCoreExecutionContext
    expected = _outcome(await stock.execute(query, variable_values=variables))
    assert _outcome(await fast.execute(query, variable_values=variables)) == expected
    # With a resolver middleware the fast path is off: still the same answers.
    middleware = _tiny(FastLeafExecutionContext, [CountResolves])
    assert _outcome(await middleware.execute(query, variable_values=variables)) == expected


SYNC_CORPUS = [q for q in TINY_CORPUS if not any(word in q[0] for word in ("shout", "async", "adItems"))]


@pytest.mark.parametrize(("query", "variables"), SYNC_CORPUS)
def test_tiny_schema_same_answers_sync(query: str, variables: dict[str, Any] | None) -> None:
    fast, stock = _tiny(FastLeafExecutionContext), _tiny(None)
    assert _outcome(fast.execute_sync(query, variable_values=variables)) == _outcome(
        stock.execute_sync(query, variable_values=variables)
    )


async def test_the_fast_path_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    general: list[str] = []
    original = FastLeafExecutionContext.execute_field

    def spy(self, parent_type, source, field_details_list, path, position_context):  # type: ignore[no-untyped-def]
        general.append(f"{parent_type.name}.{field_details_list[0].node.name.value}")
        return original(self, parent_type, source, field_details_list, path, position_context)

    monkeypatch.setattr(FastLeafExecutionContext, "execute_field", spy)
    result = await _tiny(FastLeafExecutionContext).execute(
        f"{{ items {{ {ALL_FIELDS} secret scaled @skip(if: false) child {{ id }} label twin {{ id }} }} }}"
    )
    assert result.data is not None
    # Only the root, lists, resolvers, permission-guarded and directive-carrying fields; the
    # ready fields only where the item has no ready value (one of five each).
    assert set(general) == {"Query.items", "Item.tags", "Item.secret", "Item.scaled", "Item.label", "Item.twin"}
    assert general.count("Item.label") == general.count("Item.twin") == 4


# -- the real schema, with data -----------------------------------------------------------


def _context(actor: Any) -> Any:
    from schema.context import Context

    scope = {
        "type": "http", "method": "POST", "path": "/graphql", "headers": [], "query_string": b"",
        "client": ("203.0.113.7", 50000), "server": ("127.0.0.1", 8000), "scheme": "http",
    }  # fmt: skip
    return Context(request=Request(scope), response=None, actor=actor)


PRODUCT_FIELDS = """
    id title description price { amount currency } deliveryKind status soldCount reviewCount
    minQuantity maxQuantity createdAt updatedAt rating
    wholesaleTiers { minQuantity unitPrice { amount currency } }
    deliveryPromise { minutes text } stock merchant { id name description status createdAt }
"""


async def test_real_schema_same_answers(stack) -> None:  # type: ignore[no-untyped-def]
    from models.commerce.catalog import DeliveryKind
    from resolvers.accounts.auth import ANONYMOUS, Actor
    from schema import build_schema
    from tests.factories import make_merchant, make_product, make_user

    merchant = await make_merchant()
    products = [
        await make_product(merchant, price="12.50", keys=3),
        await make_product(merchant, kind=DeliveryKind.MANUAL, stock_limit=7, price="0.99",
                           wholesale_tiers=[{"minQuantity": 10, "unitPrice": "0.90"}]),
        await make_product(merchant, kind=DeliveryKind.DIRECT_TOPUP, price="100.00"),
    ]  # fmt: skip
    user = await make_user(nickname="Equivalence")
    merchant_id = str(GlobalID("Merchant", str(merchant.id)))
    product_id = str(GlobalID("Product", str(products[0].id)))

    fast = build_schema(stack.settings)
    stock = build_schema(stack.settings)
    assert fast.execution_context_class is FastLeafExecutionContext
    stock.execution_context_class = StrawberryGraphQLCoreExecutionContext  # the stock one, all else equal

    filter_ = {"merchantId": merchant_id}
    corpus: list[tuple[str, dict[str, Any] | None, Any]] = [
        ("{ __typename }", None, ANONYMOUS),
        (
            f"query($f: ProductFilter) {{ products(first: 10, filter: $f) {{ totalCount"
            f" pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {PRODUCT_FIELDS} }} }} }} }}",
            {"f": filter_},
            ANONYMOUS,
        ),
        (
            "query($f: ProductFilter, $s: Boolean!, $i: Boolean!) { products(first: 2, filter: $f) {"
            " edges { node { ...P t: title title @skip(if: $s) status @include(if: $i) __typename"
            " ... on Product { soldCount price { amount } } } } } }"
            " fragment P on Product { id minQuantity maxQuantity deliveryKind createdAt }",
            {"f": filter_, "s": False, "i": True},
            ANONYMOUS,
        ),
        (
            "query($id: ID!) { product(id: $id) { id title } node(id: $id) { id __typename"
            " ... on Product { title price { amount currency } } } }",
            {"id": product_id},
            ANONYMOUS,
        ),
        ('{ product(id: "not an id") { id } }', None, ANONYMOUS),
        ("{ viewer { id nickname role createdAt email } categories { id name slug } }", None, Actor(user=user)),
        ("{ viewer { id } }", None, ANONYMOUS),
        (get_introspection_query(descriptions=True), None, ANONYMOUS),
    ]
    for query, variables, actor in corpus:
        expected = await stock.execute(query, variable_values=variables, context_value=_context(actor))
        got = await fast.execute(query, variable_values=variables, context_value=_context(actor))
        assert _outcome(got) == _outcome(expected), query
    # The data is there: the corpus is not comparing empty pages.
    listing = await fast.execute(corpus[1][0], variable_values=corpus[1][1], context_value=_context(ANONYMOUS))
    assert listing.errors is None and len(listing.data["products"]["edges"]) == 3
