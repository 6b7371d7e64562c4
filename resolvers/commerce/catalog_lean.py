"""The public product list without the ORM (issue 15, "a lean uncached path").

Why: building the page through Tortoise cost more than everything else the uncached catalog
page does: ~40 model instances per page (three datetime parses each on SQLite, never shown),
the query's SQL rebuilt by pypika on every request, and a second statement for the card-key
stock. Here the page is one statement, written once per process and dialect for each shape
(which filters, which cursors, which direction), returning plain rows.

It serves only what ``catalog.list_products`` serves the same way: the public list (listed
products of active shops, as ``catalog._visibility`` without ``include_hidden``), newest
first, keyset on the id, optionally narrowed to one shop, category or delivery kind.
``lean_listing`` says whether a listing qualifies; anything else (hidden products for their
managers, search, price bounds, other sorts) stays on the ORM path. tests/test_catalog_lean.py
compares the two paths' answers byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise import connections

from models.commerce.catalog import DeliveryKind, Product, ProductStatus
from models.commerce.inventory import CardKeyStatus
from models.commerce.merchants import MerchantStatus
from resolvers.accounts.auth import Actor
from resolvers.commerce.catalog import ProductFilter, ProductSort
from resolvers.pagination import Page, decode_cursor, encode_cursor, page_size

#: The filters the lean statement applies, as (ProductFilter attribute, column).
_FILTERS = (("merchant_id", "p.merchant_id"), ("category_id", "p.category_id"), ("delivery_kind", "p.delivery_kind"))

# CARD_KEY stock is the count of available keys (inventory.available_counts), the other
# kinds show their limit (schema Product.stock): the same rule, in the same statement.
_SELECT = f"""SELECT p.id, p.title, p.price, p.currency, p.delivery_kind, p.status, p.sold_count,
 p.review_count, p.min_quantity, p.max_quantity, p.merchant_id, m.name,
 CASE WHEN p.delivery_kind = '{DeliveryKind.CARD_KEY.value}' THEN (SELECT COUNT(*) FROM card_key k
  WHERE k.product_id = p.id AND k.status = '{CardKeyStatus.AVAILABLE.value}') ELSE p.stock_limit END
FROM product p JOIN merchant m ON m.id = p.merchant_id
WHERE p.status = '{ProductStatus.ACTIVE.value}' AND m.status = '{MerchantStatus.ACTIVE.value}'"""


class ProductRow:
    """One product of a lean page: the columns the page can show, the shop's name and the stock."""

    __slots__ = ("id", "title", "price", "currency", "delivery_kind", "status", "sold_count", "review_count",
                 "min_quantity", "max_quantity", "merchant_id", "merchant_name", "stock")

    id: int
    title: str
    price: Any
    currency: str
    delivery_kind: DeliveryKind
    status: ProductStatus
    sold_count: int
    review_count: int
    min_quantity: int
    max_quantity: int
    merchant_id: int
    merchant_name: str
    stock: int | None


def lean_listing(actor: Actor, listing: ProductFilter, sort: ProductSort) -> bool:
    """Whether the lean statement answers this listing exactly as ``list_products`` would."""
    return (
        sort == ProductSort.NEWEST
        # catalog._visibility: the public rows, unless someone signed in asks for hidden ones too
        and (not listing.include_hidden or actor.user is None)
        and listing.search is None
        and listing.min_price is None
        and listing.max_price is None
    )


_STATEMENTS: dict[tuple[Any, ...], str] = {}


def _statement(dialect: str, filters: tuple[str, ...], after: bool, before: bool, backwards: bool) -> str:
    key = (dialect, filters, after, before, backwards)
    sql = _STATEMENTS.get(key)
    if sql is None:
        conditions = [f"{column} = {{}}" for name, column in _FILTERS if name in filters]
        # "after" is further along the order: with newest first, a smaller id (as pagination.paginate).
        if after:
            conditions.append("p.id < {}")
        if before:
            conditions.append("p.id > {}")
        where = "".join(f" AND {condition}" for condition in conditions)
        order = "ASC" if backwards else "DESC"
        template = f"{_SELECT}{where}\nORDER BY p.id {order} LIMIT {{}}"
        count = template.count("{}")
        marks = [f"${n}" for n in range(1, count + 1)] if dialect == "postgres" else ["?"] * count
        sql = _STATEMENTS[key] = template.format(*marks)
    return sql


_PRICE = Product._meta.fields_map["price"].to_python_value  # the ORM's own conversion: same Decimal


def _rows(records: Sequence[Any]) -> list[ProductRow]:
    kinds, statuses = DeliveryKind, ProductStatus
    rows = []
    for r in records:
        row = ProductRow()
        (row.id, row.title, price, row.currency, kind, status, row.sold_count, row.review_count,
         row.min_quantity, row.max_quantity, row.merchant_id, row.merchant_name, row.stock) = r
        row.price = _PRICE(price)
        row.delivery_kind = kinds(kind)
        row.status = statuses(status)
        rows.append(row)
    return rows


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, DeliveryKind) else value


async def public_page(
    listing: ProductFilter,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[ProductRow]:
    """``list_products(actor, listing, NEWEST, ...)`` for a ``lean_listing``, in one statement;
    the same validation, order, cursors and page flags as ``pagination.paginate``."""
    backwards, size = page_size(first, last)
    values: list[Any] = []
    filters = tuple(name for name, _ in _FILTERS if getattr(listing, name) is not None)
    # Enum members as their text: the drivers bind plain str and int.
    values.extend(_plain(getattr(listing, name)) for name in filters)
    if after is not None:
        values.append(decode_cursor(after, "after"))
    if before is not None:
        values.append(decode_cursor(before, "before"))
    values.append(size + 1)
    connection = connections.get("default")
    sql = _statement(connection.capabilities.dialect, filters, after is not None, before is not None, backwards)
    _, records = await connection.execute_query(sql, values)
    rows = _rows(records[:size])
    more = len(records) > size
    if backwards:
        rows.reverse()
    return Page(
        items=rows,
        cursors=[encode_cursor(row.id) for row in rows],
        has_next=more if not backwards else before is not None,
        has_previous=more if backwards else after is not None,
        total=None,
    )
