"""Search in the graph: the `search` query over products and posts (resolvers/discovery/search.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import strawberry

from models.discovery.search import SearchKind as SearchKindValue
from resolvers.discovery import search as searching
from schema.base import After, Before, Connection, First, Last, decode_id, describe_values
from schema.commerce.catalog import Product
from schema.community.types import Post
from schema.context import Info

SearchKind = describe_values(
    strawberry.enum(SearchKindValue, name="SearchKind", description="What a search result is."),
    PRODUCT="A product on sale.",
    POST="A community post.",
)


class SearchMatchValue(StrEnum):
    TITLE = "TITLE"
    PART_TITLE = "PART_TITLE"
    BODY = "BODY"


SearchMatch = describe_values(
    strawberry.enum(SearchMatchValue, name="SearchMatch",
                    description="Where the query's words were found: results are ordered by this first."),
    TITLE="Every word of the query is in the title.",
    PART_TITLE="Some words are in the title, the others in the text.",
    BODY="The words are in the description, shop, category, body or topics only.",
)
_TIERS = {3: SearchMatchValue.TITLE, 2: SearchMatchValue.PART_TITLE, 1: SearchMatchValue.BODY}


@strawberry.input(name="SearchFilter", description="Narrows a search; every given field must match. Category, "
                                                    "shop, price and stock filters keep products only.")
class SearchFilterInput:
    kind: SearchKind | None = strawberry.field(default=None, description="Only products or only posts.")
    category_id: strawberry.ID | None = strawberry.field(default=None, description="Only products of this category.")
    merchant_id: strawberry.ID | None = strawberry.field(default=None, description="Only this shop's products.")
    min_price: str | None = strawberry.field(
        default=None, description='Lowest list price, inclusive: a decimal string, e.g. "5.00".'
    )
    max_price: str | None = strawberry.field(
        default=None, description='Highest list price, inclusive: a decimal string, e.g. "50.00".'
    )
    in_stock: bool | None = strawberry.field(
        default=None, description="True: only products that can be ordered now; false: only sold-out ones."
    )

    def to_filter(self) -> searching.SearchFilter:
        return searching.SearchFilter(
            kind=self.kind,
            category_id=decode_id(self.category_id, "Category", "filter.categoryId") if self.category_id else None,
            merchant_id=decode_id(self.merchant_id, "Merchant", "filter.merchantId") if self.merchant_id else None,
            min_price=self.min_price,
            max_price=self.max_price,
            in_stock=self.in_stock,
        )


@strawberry.type(description="One search result: a product or a post, and where the query matched it.")
class SearchHit:
    kind: SearchKind = strawberry.field(description="Whether `product` or `post` is set.")
    match: SearchMatch = strawberry.field(description="Where the query matched: title matches come first.")
    product: Product | None = strawberry.field(description="The product, when `kind` is PRODUCT.")
    post: Post | None = strawberry.field(description="The post, when `kind` is POST.")

    @classmethod
    def of(cls, hit: searching.Hit) -> SearchHit:
        is_product = hit.kind == SearchKindValue.PRODUCT
        return cls(
            kind=hit.kind,
            match=_TIERS[hit.tier],
            product=Product.from_model(hit.item) if is_product else None,  # type: ignore[arg-type]
            post=Post.from_model(hit.item) if not is_product else None,  # type: ignore[arg-type]
        )


@strawberry.type(description="Search.")
class SearchQueries:
    @strawberry.field(
        description="Products (title, description, shop, category) and posts (title, body, topics) holding every "
                    "word of `query`, Chinese segmented (\"王者 点券\" finds 王者荣耀点券). Title matches first, "
                    "then newest. Only what the viewer may see. A first page is recorded as a SEARCH event."
    )
    async def search(
        self,
        info: Info,
        query: Annotated[str, strawberry.argument(description="What to look for: words, at most 100 characters.")],
        filter: Annotated[
            SearchFilterInput | None, strawberry.argument(description="Narrow the results; default: everything.")
        ] = None,
        device_id: Annotated[str | None, strawberry.argument(
            description="An anonymous client's device id, recorded with the SEARCH event (1 to 64 characters)."
        )] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[SearchHit]:
        page = await searching.search(
            info.context.actor, query, filter.to_filter() if filter is not None else None, device_id=device_id,
            first=first, after=after, last=last, before=before,
        )
        return Connection.of(page, SearchHit.of)
