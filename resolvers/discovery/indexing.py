"""Keeping the search index in step with products and posts.

Called by the use cases that write them (resolvers/commerce/catalog.py on create and update,
resolvers/community/posts.py on create, edit and delete) inside their own transaction: a
product or post and its index row commit together, or neither does. Status changes (a hidden
product, a suspended shop, a held, hidden or deleted post) need no re-index: searches join the
live rows and apply the visibility rules there. ``index_missing`` is the backstop for rows
written by other paths (seeds, data from before the index): a sweep indexes what has no row.

This module imports no use case of commerce or community, so both can import it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery

from kameng import text
from models.commerce.catalog import Product
from models.community.posts import ContentStatus, Post
from models.community.topics import PostTopic
from models.discovery.search import SearchDocument, SearchKind
from subscriptions import outbox

#: Terms kept per document body, and characters of each text segmented: jieba runs in the
#: writer's transaction, at about 40,000 characters a second on a busy core.
MAX_BODY_TERMS = 4000
MAX_TEXT_CHARS = 5000
#: Products the product list's ``search`` filter considers.
MATCH_LIMIT = 1000
#: Rows the backstop sweep indexes per kind and run.
SWEEP_BATCH = 200


def _terms(texts: list[str], limit: int) -> str:
    seen: dict[str, None] = {}
    for value in texts:
        for term in text.index_terms(value[:MAX_TEXT_CHARS]):
            seen.setdefault(term, None)
            if len(seen) >= limit:
                return " ".join(seen)
    return " ".join(seen)


def fts_expression(terms: list[str], op: str, column: str | None = None) -> str:
    """An SQLite FTS5 expression of quoted terms (terms are word characters: quoting is exact)."""
    joined = f" {op} ".join(f'"{t}"' for t in terms)
    return f"{column} : ({joined})" if column else f"({joined})"


def tsquery(terms: list[str], op: str) -> str:
    """A PostgreSQL tsquery of quoted lexemes, taken as they are (no parser, no stemming)."""
    return f" {op} ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)


def vector(column: str) -> str:
    """The tsvector of a space-separated terms column (the GIN index's expression)."""
    return f"array_to_tsvector(array_remove(string_to_array({column}, ' '), ''))"


async def matching_products(query: str) -> list[int]:
    """Ids of the products (any status) whose index holds every term of ``query``, newest
    first, at most MATCH_LIMIT: what the product list's old ``search`` filter now uses."""
    terms = text.query_terms(query)
    if not terms:
        return []
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        match = vector("d.title_terms || ' ' || d.body_terms") + " @@ $1::tsquery"
        value = tsquery(terms, "&")
        limit = "$2"
    else:
        match = "d.id IN (SELECT rowid FROM search_fts WHERE search_fts MATCH ?)"
        value = fts_expression(terms, "AND")
        limit = "?"
    sql = (f"SELECT d.ref_id AS ref_id FROM search_document d WHERE d.kind = 'PRODUCT' AND {match} "
           f"ORDER BY d.ref_id DESC LIMIT {limit}")
    _, rows = await connection.execute_query(sql, [value, MATCH_LIMIT])
    return [int(row["ref_id"]) for row in rows]


async def _write(kind: SearchKind, ref_id: int, title: str, body: list[str]) -> None:
    title_terms = _terms([title], 200)
    body_terms = _terms(body, MAX_BODY_TERMS)
    now = datetime.now(UTC)
    async with outbox.atomic() as connection:
        dialect = connection.capabilities.dialect
        doc = await SearchDocument.filter(kind=kind, ref_id=ref_id).first()
        if doc is None:
            try:
                async with outbox.atomic():  # a savepoint: a concurrent writer may create it first
                    doc = await SearchDocument.create(
                        kind=kind, ref_id=ref_id, title_terms=title_terms, body_terms=body_terms, indexed_at=now
                    )
            except IntegrityError:
                doc = await SearchDocument.get(kind=kind, ref_id=ref_id)
        await SearchDocument.filter(id=doc.id).update(title_terms=title_terms, body_terms=body_terms, indexed_at=now)
        if dialect == "sqlite":
            await connection.execute_query("DELETE FROM search_fts WHERE rowid = ?", [doc.id])
            await connection.execute_query(
                "INSERT INTO search_fts (rowid, title, body) VALUES (?, ?, ?)", [doc.id, title_terms, body_terms]
            )


async def index_product(product_id: int) -> None:
    """(Re-)index a product: its title, then description, shop name and category name."""
    product = await Product.filter(id=product_id).select_related("merchant", "category").first()
    if product is None:
        await forget(SearchKind.PRODUCT, product_id)
        return
    category = product.category.name if product.category is not None else ""
    await _write(SearchKind.PRODUCT, product.id, product.title, [product.description, product.merchant.name, category])


async def index_post(post_id: int) -> None:
    """(Re-)index a post: its title, then body and topic names."""
    post = await Post.filter(id=post_id).first()
    if post is None:
        await forget(SearchKind.POST, post_id)
        return
    names = await PostTopic.filter(post_id=post.id).values_list("topic__name", flat=True)
    await _write(SearchKind.POST, post.id, post.title, [post.body, *[str(n) for n in names]])


async def forget(kind: SearchKind, ref_id: int) -> None:
    """Drop a document from the index (a deleted post: nobody but staff sees it again)."""
    async with outbox.atomic() as connection:
        ids = await SearchDocument.filter(kind=kind, ref_id=ref_id).values_list("id", flat=True)
        if not ids:
            return
        if connection.capabilities.dialect == "sqlite":
            for doc_id in ids:
                await connection.execute_query("DELETE FROM search_fts WHERE rowid = ?", [doc_id])
        await SearchDocument.filter(kind=kind, ref_id=ref_id).delete()


async def index_missing(batch: int = SWEEP_BATCH) -> int:
    """Index up to ``batch`` products and up to ``batch`` posts (not deleted ones) that have
    no index row yet, newest first; how many were indexed."""
    done = 0
    products = (
        await Product.exclude(id__in=Subquery(SearchDocument.filter(kind=SearchKind.PRODUCT).values("ref_id")))
        .order_by("-id").limit(batch).values_list("id", flat=True)
    )
    for product_id in products:
        await index_product(product_id)
        done += 1
    posts = (
        await Post.exclude(id__in=Subquery(SearchDocument.filter(kind=SearchKind.POST).values("ref_id")))
        .exclude(status=ContentStatus.DELETED)
        .order_by("-id").limit(batch).values_list("id", flat=True)
    )
    for post_id in posts:
        await index_post(post_id)
        done += 1
    return done
