"""The search index: one row per searchable product or post, holding its segmented terms.

The terms are jieba's (kameng/text.py), space-separated. The full-text side is not a Tortoise
field: on SQLite an FTS5 table ``search_fts`` (rowid = this row's id, columns title and body),
on PostgreSQL a GIN index over ``array_to_tsvector`` of the terms (migration 0007). Filters
and visibility are not copied here: a search joins the live product, shop and post rows, so a
hidden product or post drops out the moment its status changes.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class SearchKind(StrEnum):
    PRODUCT = "PRODUCT"
    POST = "POST"


class SearchDocument(Model):
    """A product (title, then description, shop and category names) or a post (title, then
    body and topic names), as segmented terms."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharEnumField(SearchKind, max_length=16)
    ref_id = fields.BigIntField()
    title_terms = fields.TextField(default="")
    body_terms = fields.TextField(default="")
    indexed_at = fields.DatetimeField()

    class Meta:
        table = "search_document"
        unique_together = (("kind", "ref_id"),)
