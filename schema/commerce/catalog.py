"""Products in the graph: the Product type, the product list, and product mutations.

Thin: GraphQL values in, resolvers.commerce.catalog called, types out. Product mutations
are schema/commerce/product_edits.py. Every related object
(merchant, category, stock) comes through a request-scoped DataLoader, so a page of
products costs the same few queries whatever its size; the public list's usual selections
take the lean path instead (schema/commerce/catalog_lean.py: one statement, plain rows).
Shops and categories are
schema/commerce/merchants.py; card-key imports schema/commerce/inventory.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from models.commerce.catalog import DeliveryKind as DeliveryKindValue
from models.commerce.catalog import Product as ProductModel
from models.commerce.catalog import ProductStatus as ProductStatusValue
from resolvers.commerce import catalog, catalog_lean, pricing
from resolvers.community import posts
from resolvers.discovery import recommendations as discovery
from resolvers.commerce.catalog import ProductSort as ProductSortValue
from schema.base import (
    After,
    Before,
    Connection,
    First,
    Last,
    Money,
    decode_id,
    describe_values,
    graph_type,
    in_graph,
    node_keys,
)
from schema.commerce.catalog_lean import lean_connection, lean_selection
from schema.commerce.promises import LateDeliveryCompensation
from schema.executor import ready
from schema.context import Info
from subscriptions import cache_tags

if TYPE_CHECKING:
    from schema.commerce.merchants import Category, Merchant
    from schema.community.types import Post, PostKind, Topic

DeliveryKind = strawberry.enum(
    DeliveryKindValue,
    name="DeliveryKind",
    description="CARD_KEY: imported keys, delivered at once. DIRECT_TOPUP: the shop's supplier "
    "tops up the buyer's account. MANUAL: the merchant delivers by hand, within the promise.",
)
describe_values(
    DeliveryKind,
    CARD_KEY="A card key (卡密) from the imported stock, delivered as soon as the order is paid.",
    DIRECT_TOPUP="The shop's supplier tops up the account the buyer named; delivered by a worker.",
    MANUAL="The merchant delivers by hand before the delivery promise runs out.",
)
ProductStatus = describe_values(
    strawberry.enum(ProductStatusValue, name="ProductStatus", description="Whether a product is listed."),
    ACTIVE="Listed and on sale.",
    HIDDEN="Unlisted: only its shop's owner and staff see it; it cannot be ordered.",
)
ProductSort = describe_values(
    strawberry.enum(ProductSortValue, name="ProductSort", description="Orders of a product list."),
    NEWEST="Most recently added first.",
    PRICE_ASC="Cheapest first (list price).",
    PRICE_DESC="Dearest first (list price).",
    BEST_SELLING="Most units sold first.",
)


_NOT_LOADED: Any = object()


# -- types ------------------------------------------------------------------------------


@strawberry.type(description="A volume discount: a lower unit price from a quantity per order on.")
class WholesaleTier:
    min_quantity: int = strawberry.field(description="From this many units per order...")
    unit_price: Money = strawberry.field(description="...each unit costs this.")


@strawberry.type(description="How soon an order is delivered once paid.")
class DeliveryPromise:
    minutes: int = strawberry.field(description="At most this many minutes after payment.")
    text: str = strawberry.field(description='Human-readable, e.g. "Delivered within 10 minutes".')
    late_compensation: LateDeliveryCompensation = strawberry.field(
        description="What the buyer gets, automatically and once, if the order is delivered later than promised."
    )


@in_graph
@strawberry.type(
    description="Something a shop sells: a card key, a top-up or a hand-delivered good. Public while ACTIVE "
                "in an ACTIVE shop; otherwise only its shop's owner and staff see it."
)
class Product(relay.Node):
    id: relay.NodeID[int]
    title: str = strawberry.field(description="The product's name.")
    description: str = strawberry.field(description="The shop's text about the product, plain text; may be empty.")
    price: Money = strawberry.field(description="List price of one unit (wholesale tiers may lower it).")
    delivery_kind: DeliveryKind = strawberry.field(description="How an order of it is delivered.")
    status: ProductStatus = strawberry.field(description="Whether it is listed.")
    sold_count: int = strawberry.field(description="Units delivered, all time.")
    review_count: int = strawberry.field(description="How many reviews rated it.")
    min_quantity: int = strawberry.field(description="Fewest units per order.")
    max_quantity: int = strawberry.field(description="Most units per order.")
    created_at: datetime = strawberry.field(description="When the product was added.")
    updated_at: datetime = strawberry.field(description="When the shop last changed it.")
    _model: strawberry.Private[ProductModel]
    # Filled for a whole page at once (product_page): the resolvers below then answer without
    # an await per item (issue 15). _NOT_LOADED: not filled, load it.
    _stock: strawberry.Private[Any] = _NOT_LOADED
    _merchant: strawberry.Private[Any] = None

    @strawberry.field(description="Average review rating; null before the first review.")
    def rating(self) -> float | None:
        model = self._model
        return round(model.rating_sum / model.review_count, 2) if model.review_count else None

    @strawberry.field(description="Cheaper unit prices from a quantity on, ascending by quantity.")
    def wholesale_tiers(self) -> list[WholesaleTier]:
        return [
            WholesaleTier(min_quantity=q, unit_price=Money(amount=p.quantize(pricing.CENT), currency=self._model.currency))
            for q, p in pricing.parse_tiers(self._model.wholesale_tiers)
        ]

    @strawberry.field(description="Days a delivered unit stays valid (the order's `validUntil`); null: no end.")
    def validity_days(self) -> int | None:
        return self._model.validity_days

    @strawberry.field(description="Shortest plan period, in days, a buyer may choose (`subscribeToProduct`); null: "
                                  "not sold as a plan.")
    def plan_min_days(self) -> int | None:
        return self._model.plan_min_days

    @strawberry.field(description="Longest plan period, in days, a buyer may choose; null: not sold as a plan.")
    def plan_max_days(self) -> int | None:
        return self._model.plan_max_days

    @strawberry.field(description="How soon an order of it is delivered once paid.")
    def delivery_promise(self) -> DeliveryPromise:
        minutes = self._model.delivery_promise_minutes
        return DeliveryPromise(minutes=minutes, text=catalog.promise_text(minutes),
                               late_compensation=LateDeliveryCompensation.of(self._model))

    # ready(): a lean list page (schema/commerce/catalog_lean.py) fills the value for the whole
    # page, and the executor reads it without calling the resolver.
    @strawberry.field(
        description="Units on sale: CARD_KEY counts available keys; other kinds show their stock "
        "limit, null meaning unlimited.",
        metadata=ready("_ready_stock"),
    )
    def stock(self, info: Info) -> int | None:
        # Plain (not async): a value when the page filled it, else the DataLoader's awaitable,
        # which graphql-core awaits like an async resolver's.
        model = self._model
        cache_tags.record(cache_tags.stock(model.id))
        if model.delivery_kind != DeliveryKindValue.CARD_KEY:
            return model.stock_limit
        if self._stock is not _NOT_LOADED:
            return self._stock  # type: ignore[no-any-return]
        return info.context.loaders.card_key_stock.load(model.id)  # type: ignore[return-value]

    @strawberry.field(description="The shop that sells it.", metadata=ready("_ready_merchant"))
    def merchant(self, info: Info) -> Annotated[Merchant, strawberry.lazy("schema.commerce.merchants")]:
        model = self._model
        cache_tags.record(cache_tags.merchant(model.merchant_id))
        if self._merchant is not None:
            return graph_type("Merchant").from_model(self._merchant)  # type: ignore[no-any-return]
        return self._load_merchant(info)  # type: ignore[return-value]

    async def _load_merchant(self, info: Info) -> Any:
        merchant = await info.context.loaders.merchant.load(self._model.merchant_id)
        return graph_type("Merchant").from_model(merchant)

    @strawberry.field(description="Its category; null if it has none.")
    async def category(self, info: Info) -> Annotated[Category, strawberry.lazy("schema.commerce.merchants")] | None:
        if self._model.category_id is None:
            return None
        category = await info.context.loaders.category.load(self._model.category_id)
        return graph_type("Category").from_model(category) if category is not None else None

    @strawberry.field(description="Visible posts about this product (reviews, showcases, ...), newest first.")
    async def posts(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        kind: Annotated[
            Annotated[PostKind, strawberry.lazy("schema.community.types")] | None,
            strawberry.argument(description="Only posts of this kind; default: all."),
        ] = None,
    ) -> Connection[Annotated[Post, strawberry.lazy("schema.community.types")]]:
        page = await posts.list_posts(
            info.context.actor, posts.PostFilter(product_id=self.id, kind=kind),
            first=first, after=after, last=last, before=before,
        )
        return Connection.of(page, graph_type("Post").from_model)

    @strawberry.field(description="How many users have a delivered or completed order of this product.")
    async def buyer_count(self, info: Info) -> int:
        return await info.context.loaders.buyer_count.load(self.id)

    @strawberry.field(description="Products popular with this product's buyers, on sale now (recommendations' "
                                  "PRODUCT surface; trending when it has no neighbours yet).")
    async def similar(
        self, first: Annotated[int, strawberry.argument(description="How many (1 to 50).")] = 10,
    ) -> list[Product]:
        return [Product.from_model(p) for p in await discovery.similar_products(self.id, first)]

    @strawberry.field(description="The purchaser circle: a topic where buyers of this product talk.")
    async def circle(self, info: Info) -> Annotated[Topic, strawberry.lazy("schema.community.types")] | None:
        topic = await info.context.loaders.circle.load(self.id)
        return graph_type("Topic").from_model(topic) if topic is not None else None

    @classmethod
    def from_model(cls, product: ProductModel) -> Product:
        cache_tags.record(cache_tags.product(product.id))
        return cls(
            id=product.id,
            title=product.title,
            description=product.description,
            price=Money(amount=product.price, currency=product.currency),
            delivery_kind=product.delivery_kind,
            status=product.status,
            sold_count=product.sold_count,
            review_count=product.review_count,
            min_quantity=product.min_quantity,
            max_quantity=product.max_quantity,
            created_at=product.created_at,
            updated_at=product.updated_at,
            _model=product,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Product | None]:
        return await _visible_products(info, node_keys(node_ids))


async def _visible_products(info: Info, ids: list[int | None]) -> list[Product | None]:
    """Products by id, None where missing or hidden from the viewer: two batched loads."""
    loaders = info.context.loaders
    # A missing or hidden product depends on its id too: showing it later invalidates the null.
    cache_tags.record(*(cache_tags.product(i) for i in ids if i is not None))
    found = await loaders.product.load_many([i for i in ids if i is not None])
    products = {p.id: p for p in found if p is not None}
    merchants = await loaders.merchant.load_many(sorted({p.merchant_id for p in products.values()}))
    shops = {m.id: m for m in merchants if m is not None}
    cache_tags.record(*(cache_tags.merchant(m) for m in shops))
    actor = info.context.actor
    result: list[Product | None] = []
    for i in ids:
        product = products.get(i) if i is not None else None
        shop = shops.get(product.merchant_id) if product is not None else None
        visible = product is not None and shop is not None and catalog.product_visible(actor, product, shop)
        result.append(Product.from_model(product) if visible else None)  # type: ignore[arg-type]
    return result


async def product_page(
    info: Info, listing: catalog.ProductFilter, sort: ProductSortValue | None, **page: Any
) -> Connection[Product]:
    sort = sort or ProductSortValue.NEWEST
    cache_tags.record(cache_tags.PRODUCT_LIST)
    if sort == ProductSortValue.BEST_SELLING:
        cache_tags.record(cache_tags.PRODUCT_LIST_BY_SALES)
    if catalog_lean.lean_listing(info.context.actor, listing, sort):
        selected = lean_selection(info)
        if selected is not None:
            return lean_connection(await catalog_lean.public_page(listing, **page), selected)
    result = await catalog.list_products(info.context.actor, listing, sort, **page)
    merchants = info.context.loaders.merchant
    for product in result.items:  # fetched in the same query: no second look-up
        merchants.prime(product.merchant_id, product.merchant)
    # The page's card-key stock in one grouped count, before any field asks (no await per item).
    keyed = [p.id for p in result.items if p.delivery_kind == DeliveryKindValue.CARD_KEY]
    counts = dict(zip(keyed, await info.context.loaders.card_key_stock.load_many(keyed), strict=True)) if keyed else {}
    connection = Connection.of(result, Product.from_model)
    for edge, product in zip(connection.edges, result.items, strict=True):
        node = edge.node
        node._merchant = product.merchant  # joined by the list query
        if node.id in counts:
            node._stock = counts[node.id]
    return connection


# -- queries ----------------------------------------------------------------------------


@strawberry.input(name="ProductFilter", description="Narrows a product list; every given field must match.")
class ProductFilterInput:
    merchant_id: strawberry.ID | None = strawberry.field(default=None, description="Only this shop's products.")
    category_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only products of this category (global ID)."
    )
    delivery_kind: DeliveryKind | None = strawberry.field(default=None, description="Only this delivery kind.")
    search: str | None = strawberry.field(
        default=None,
        description="Superseded by the `search` query (ranked, posts too). Products whose title, description, "
                    "shop or category hold every word (Chinese segmented), among the 1000 newest matches.",
    )
    min_price: str | None = strawberry.field(
        default=None, description='Lowest list price, inclusive: a decimal string, e.g. "5.00".'
    )
    max_price: str | None = strawberry.field(
        default=None, description='Highest list price, inclusive: a decimal string, e.g. "50.00".'
    )
    include_hidden: bool = strawberry.field(
        default=False, description="Also the hidden products of shops the viewer manages (staff: all)."
    )

    def to_filter(self) -> catalog.ProductFilter:
        return catalog.ProductFilter(
            merchant_id=decode_id(self.merchant_id, "Merchant", "filter.merchantId") if self.merchant_id else None,
            category_id=decode_id(self.category_id, "Category", "filter.categoryId") if self.category_id else None,
            delivery_kind=self.delivery_kind,
            search=self.search,
            min_price=self.min_price,
            max_price=self.max_price,
            include_hidden=self.include_hidden,
        )


@strawberry.type(description="Queries about products.")
class CatalogQueries:
    @strawberry.field(description="Products on sale, newest first unless sorted otherwise.")
    async def products(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter: Annotated[
            ProductFilterInput | None, strawberry.argument(description="Narrow the list; default: everything listed.")
        ] = None,
        sort: Annotated[ProductSort | None, strawberry.argument(description="The order of the list.")] = (
            ProductSortValue.NEWEST
        ),
    ) -> Connection[Product]:
        listing = filter.to_filter() if filter is not None else catalog.ProductFilter()
        return await product_page(info, listing, sort, first=first, after=after, last=last, before=before)

    @strawberry.field(description="A product; null if it does not exist or is hidden from the viewer.")
    async def product(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The product's global ID.")]
    ) -> Product | None:
        (product,) = await _visible_products(info, [decode_id(id, "Product", "id")])
        return product
