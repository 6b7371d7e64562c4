"""Search over products and posts: Chinese-aware, ranked, filtered, keyset-paged.

* Terms. The query is segmented by jieba (kameng/text.py, precise mode) and every term must
  match (AND); documents were indexed in jieba's search mode (resolvers/discovery/indexing.py),
  so "王者 点券" finds "王者荣耀点券" and a word of a description finds its product. Terms are
  word characters only: full-text syntax in a query (quotes, ``*``, ``NEAR(``, ``OR``) is
  never passed to the database as syntax.
* Rank. A document-local tier: 3 when every term is in the title, 2 when some are, 1 when the
  terms are only in the body (description, shop, category, topics); newest indexed first within
  a tier. Not bm25: its scores move with every insert (document frequencies are corpus-wide),
  which would make a cursor skip or repeat results; a tier and the row id never move.
* Visibility. The live product, shop and post rows are joined: listed products of active shops,
  and the posts lists show the viewer (VISIBLE, plus their own HELD and HIDDEN ones). Hidden
  items drop out the moment their status changes, before any re-index.
* One query for a page (plus one per kind to load the objects); totalCount is a COUNT when asked.
* A first page is a SEARCH behaviour event, buffered and flushed with the client's events
  (resolvers/discovery/ingest.py).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import orjson
from tortoise import connections

from kameng import text
from models.commerce.catalog import Product
from models.community.posts import Post
from models.discovery.events import EventKind
from models.discovery.search import SearchKind
from resolvers.accounts.auth import Actor
from resolvers.commerce.inputs import parse_amount
from resolvers.discovery import indexing, ingest
from resolvers.discovery.tracking import TrackedEvent, as_row
from resolvers.errors import invalid
from resolvers.pagination import Page, page_size

QUERY_MAX = 100
DEVICE_MAX = 64


@dataclass(frozen=True)
class SearchFilter:
    kind: SearchKind | None = None
    category_id: int | None = None
    merchant_id: int | None = None
    min_price: str | None = None
    max_price: str | None = None
    in_stock: bool | None = None

    @property
    def product_only(self) -> bool:
        return any(v is not None for v in (self.category_id, self.merchant_id, self.min_price, self.max_price,
                                           self.in_stock))


@dataclass(frozen=True)
class Hit:
    kind: SearchKind
    tier: int  # 3: all terms in the title, 2: some, 1: body only
    item: Product | Post


class _Params:
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.dialect == "postgres" else "?"


def _hits_sql(p: _Params, actor: Actor, terms: list[str], f: SearchFilter) -> str:
    """SELECT id, kind, ref_id, tier of every visible match (no order, no limit)."""
    if p.dialect == "postgres":
        # Parameters in the order they appear in the statement (SQLite's are positional).
        title_all = f"{indexing.vector('d.title_terms')} @@ {p(indexing.tsquery(terms, '&'))}::tsquery"
        title_any = f"{indexing.vector('d.title_terms')} @@ {p(indexing.tsquery(terms, '|'))}::tsquery"
        both = indexing.vector("d.title_terms || ' ' || d.body_terms")  # the GIN index's expression
        match = f"{both} @@ {p(indexing.tsquery(terms, '&'))}::tsquery"
        price = "p.price"
    else:
        fts = "d.id IN (SELECT rowid FROM search_fts WHERE search_fts MATCH {})"
        title_all = fts.format(p(indexing.fts_expression(terms, "AND", "title")))
        title_any = fts.format(p(indexing.fts_expression(terms, "OR", "title")))
        match = fts.format(p(indexing.fts_expression(terms, "AND")))
        price = "CAST(p.price AS REAL)"

    def number(value: Decimal) -> Any:
        return value if p.dialect == "postgres" else float(value)

    product = ["p.status = 'ACTIVE'", "m.status = 'ACTIVE'"]
    if f.category_id is not None:
        product.append(f"p.category_id = {p(f.category_id)}")
    if f.merchant_id is not None:
        product.append(f"p.merchant_id = {p(f.merchant_id)}")
    low = parse_amount(f.min_price, "filter.minPrice", allow_zero=True) if f.min_price is not None else None
    high = parse_amount(f.max_price, "filter.maxPrice", allow_zero=True) if f.max_price is not None else None
    if low is not None and high is not None and low > high:
        raise invalid("filter.maxPrice", "maxPrice is below minPrice.")
    if low is not None:
        product.append(f"{price} >= {p(number(low))}")
    if high is not None:
        product.append(f"{price} <= {p(number(high))}")
    if f.in_stock is not None:
        stocked = (
            "(CASE WHEN p.delivery_kind = 'CARD_KEY' THEN EXISTS (SELECT 1 FROM card_key k WHERE k.product_id = p.id "
            "AND k.status = 'AVAILABLE') ELSE (p.stock_limit IS NULL OR p.stock_limit > 0) END)"
        )
        product.append(stocked if f.in_stock else f"NOT {stocked}")
    post = "s.status = 'VISIBLE'"
    if actor.user is not None:
        post = f"({post} OR (s.author_id = {p(actor.user.id)} AND s.status IN ('HELD', 'HIDDEN')))"

    branches = []
    if f.kind in (None, SearchKind.PRODUCT):
        branches.append("(d.kind = 'PRODUCT' AND " + " AND ".join(product) + ")")
    if f.kind in (None, SearchKind.POST) and not f.product_only:
        branches.append(f"(d.kind = 'POST' AND {post})")
    return (
        f"SELECT d.id AS id, d.kind AS kind, d.ref_id AS ref_id, "
        f"CASE WHEN {title_all} THEN 3 WHEN {title_any} THEN 2 ELSE 1 END AS tier "
        "FROM search_document d "
        "LEFT JOIN product p ON d.kind = 'PRODUCT' AND p.id = d.ref_id "
        "LEFT JOIN merchant m ON m.id = p.merchant_id "
        "LEFT JOIN post s ON d.kind = 'POST' AND s.id = d.ref_id "
        f"WHERE {match} AND ({' OR '.join(branches)})"
    )


def encode_cursor(tier: int, doc_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(["search", tier, doc_id])).decode().rstrip("=")


def decode_cursor(cursor: str, field: str) -> tuple[int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        tag, tier, doc_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if tag != "search" or type(tier) is not int or type(doc_id) is not int or not 1 <= tier <= 3:
            raise ValueError
        if not 0 < doc_id < 2**63:
            raise ValueError
        return tier, doc_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise invalid(field, "The cursor is not one this API handed out.") from None


class _Total:
    """``Page.total``: counts the whole result only when totalCount is asked for."""

    def __init__(self, sql: str, values: list[Any]) -> None:
        self.sql, self.values = sql, values

    async def count(self) -> int:
        _, rows = await connections.get("default").execute_query(f"SELECT COUNT(*) AS n FROM ({self.sql}) hits",
                                                                 self.values)
        return int(rows[0]["n"])


def clean_query(query: str) -> str:
    """The query as recorded: normalised (no control characters), spaces collapsed."""
    if len(query) > QUERY_MAX:
        raise invalid("query", f"A search is at most {QUERY_MAX} characters.")
    return " ".join(text.normalise(query).split())


async def search(
    actor: Actor,
    query: str,
    filter: SearchFilter | None = None,
    *,
    device_id: str | None = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Page[Hit]:
    """One page of the visible products and posts matching every term of ``query``."""
    filter = filter or SearchFilter()
    cleaned = clean_query(query)
    if device_id is not None and not 0 < len(device_id) <= DEVICE_MAX:
        raise invalid("deviceId", f"A device id is 1 to {DEVICE_MAX} characters.")
    if filter.kind == SearchKind.POST and filter.product_only:
        raise invalid("filter.kind", "Category, shop, price and stock filters apply to products only.")
    backwards, size = page_size(first, last)
    after_key = decode_cursor(after, "after") if after is not None else None
    before_key = decode_cursor(before, "before") if before is not None else None
    terms = text.query_terms(cleaned)
    if cleaned and after is None and before is None:
        # Buffered like the client's own events, not written at once: a search is a read, and
        # need not wait on an insert, nor on an erasure holding the profiles' lock (the flush
        # applies the user's choice under that lock, as for every buffered event).
        ingest.buffer().add([as_row(TrackedEvent(
            event_id=f"search:{uuid.uuid4().hex}", kind=EventKind.SEARCH, query=cleaned[:200],
            user_id=actor.user.id if actor.user is not None else None, device_id=device_id,
        ))])
    if not terms:
        return Page(items=[], cursors=[], has_next=False, has_previous=False)

    connection = connections.get("default")
    p = _Params(connection.capabilities.dialect)
    hits = _hits_sql(p, actor, terms, filter)
    base_values = list(p.values)
    bounds = []
    if after_key is not None:
        bounds.append(f"(tier < {p(after_key[0])} OR (tier = {p(after_key[0])} AND id < {p(after_key[1])}))")
    if before_key is not None:
        bounds.append(f"(tier > {p(before_key[0])} OR (tier = {p(before_key[0])} AND id > {p(before_key[1])}))")
    order = "tier ASC, id ASC" if backwards else "tier DESC, id DESC"
    where = f"WHERE {' AND '.join(bounds)}" if bounds else ""
    sql = f"SELECT id, kind, ref_id, tier FROM ({hits}) hits {where} ORDER BY {order} LIMIT {p(size + 1)}"
    _, rows = await connection.execute_query(sql, p.values)
    more = len(rows) > size
    rows = list(rows[:size])
    if backwards:
        rows.reverse()

    product_ids = [int(r["ref_id"]) for r in rows if r["kind"] == SearchKind.PRODUCT]
    post_ids = [int(r["ref_id"]) for r in rows if r["kind"] == SearchKind.POST]
    products = {x.id: x for x in await Product.filter(id__in=product_ids)} if product_ids else {}
    posts = {x.id: x for x in await Post.filter(id__in=post_ids)} if post_ids else {}
    items: list[Hit] = []
    cursors: list[str] = []
    for row in rows:
        kind = SearchKind(row["kind"])
        found = (products if kind == SearchKind.PRODUCT else posts).get(int(row["ref_id"]))
        if found is not None:
            items.append(Hit(kind=kind, tier=int(row["tier"]), item=found))
            cursors.append(encode_cursor(int(row["tier"]), int(row["id"])))
    return Page(
        items=items,
        cursors=cursors,
        has_next=more if not backwards else before is not None,
        has_previous=more if backwards else after is not None,
        total=cast(Any, _Total(hits, base_values)),
    )
