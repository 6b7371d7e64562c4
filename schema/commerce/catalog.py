"""Products in the graph: the Product type, the product list, and product mutations.

Thin: GraphQL values in, resolvers.commerce.catalog called, types out. Every related object
(merchant, category, stock) comes through a request-scoped DataLoader, so a page of
products costs the same few queries whatever its size. Shops and categories are
schema/commerce/merchants.py; card-key imports schema/commerce/inventory.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader

from models.commerce.catalog import DeliveryKind as DeliveryKindValue
from models.commerce.catalog import Product as ProductModel
from models.commerce.catalog import ProductStatus as ProductStatusValue
from resolvers.commerce import catalog, pricing
from resolvers.community import posts
from resolvers.commerce.catalog import UNCHANGED, ProductFields
from resolvers.commerce.catalog import ProductSort as ProductSortValue
from schema.base import Connection, Money, UserError, decode_id, graph_type, mutation, no_errors
from schema.context import Info

if TYPE_CHECKING:
    from schema.commerce.merchants import Category, Merchant
    from schema.community.types import Post, PostKind, Topic

DeliveryKind = strawberry.enum(
    DeliveryKindValue,
    name="DeliveryKind",
    description="CARD_KEY: imported keys, delivered at once. DIRECT_TOPUP: the shop's supplier "
    "tops up the buyer's account. MANUAL: the merchant delivers by hand, within the promise.",
)
ProductStatus = strawberry.enum(ProductStatusValue, name="ProductStatus", description="HIDDEN: unlisted.")
ProductSort = strawberry.enum(ProductSortValue, name="ProductSort")


def node_keys(node_ids: Iterable[str]) -> list[int | None]:
    """Database keys of node ids; None for one that is not a number."""
    parsed: list[int | None] = []
    for node_id in node_ids:
        try:
            parsed.append(int(node_id))
        except ValueError:
            parsed.append(None)
    return parsed



# -- types ------------------------------------------------------------------------------


@strawberry.type
class WholesaleTier:
    min_quantity: int = strawberry.field(description="From this many units per order...")
    unit_price: Money = strawberry.field(description="...each unit costs this.")


@strawberry.type(description="How soon an order is delivered once paid.")
class DeliveryPromise:
    minutes: int
    text: str = strawberry.field(description='Human-readable, e.g. "Delivered within 10 minutes".')



@strawberry.type
class Product(relay.Node):
    id: relay.NodeID[int]
    title: str
    description: str
    price: Money
    delivery_kind: DeliveryKind
    status: ProductStatus
    sold_count: int
    review_count: int
    min_quantity: int = strawberry.field(description="Fewest units per order.")
    max_quantity: int = strawberry.field(description="Most units per order.")
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[ProductModel]

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

    @strawberry.field
    def delivery_promise(self) -> DeliveryPromise:
        minutes = self._model.delivery_promise_minutes
        return DeliveryPromise(minutes=minutes, text=catalog.promise_text(minutes))

    @strawberry.field(
        description="Units on sale: CARD_KEY counts available keys; other kinds show their stock "
        "limit, null meaning unlimited."
    )
    async def stock(self, info: Info) -> int | None:
        if self._model.delivery_kind == DeliveryKindValue.CARD_KEY:
            return await info.context.loaders.card_key_stock.load(self._model.id)
        return self._model.stock_limit

    @strawberry.field
    async def merchant(self, info: Info) -> Annotated[Merchant, strawberry.lazy("schema.commerce.merchants")]:
        merchant = await info.context.loaders.merchant.load(self._model.merchant_id)
        return graph_type("Merchant").from_model(merchant)

    @strawberry.field
    async def category(self, info: Info) -> Annotated[Category, strawberry.lazy("schema.commerce.merchants")] | None:
        if self._model.category_id is None:
            return None
        category = await info.context.loaders.category.load(self._model.category_id)
        return graph_type("Category").from_model(category) if category is not None else None

    @strawberry.field(description="Visible posts about this product (reviews, showcases, ...), newest first.")
    async def posts(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        kind: Annotated[PostKind, strawberry.lazy("schema.community.types")] | None = None,
    ) -> Connection[Annotated[Post, strawberry.lazy("schema.community.types")]]:
        page = await posts.list_posts(
            info.context.actor, posts.PostFilter(product_id=self.id, kind=kind), first=first, after=after
        )
        return Connection.of(page, graph_type("Post").from_model)

    @strawberry.field(description="How many users have a delivered or completed order of this product.")
    async def buyer_count(self, info: Info) -> int:
        return await info.context.loaders.buyer_count.load(self.id)

    @strawberry.field(description="The purchaser circle: a topic where buyers of this product talk.")
    async def circle(self, info: Info) -> Annotated[Topic, strawberry.lazy("schema.community.types")] | None:
        topic = await info.context.loaders.circle.load(self.id)
        return graph_type("Topic").from_model(topic) if topic is not None else None

    @classmethod
    def from_model(cls, product: ProductModel) -> Product:
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
    found = await loaders.product.load_many([i for i in ids if i is not None])
    products = {p.id: p for p in found if p is not None}
    merchants = await loaders.merchant.load_many(sorted({p.merchant_id for p in products.values()}))
    shops = {m.id: m for m in merchants if m is not None}
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
    result = await catalog.list_products(info.context.actor, listing, sort or ProductSortValue.NEWEST, **page)
    merchants = info.context.loaders.merchant
    for product in result.items:  # fetched in the same query: no second look-up
        merchants.prime(product.merchant_id, product.merchant)
    return Connection.of(result, Product.from_model)



# -- queries ----------------------------------------------------------------------------


@strawberry.input(name="ProductFilter")
class ProductFilterInput:
    merchant_id: strawberry.ID | None = None
    category_id: strawberry.ID | None = None
    delivery_kind: DeliveryKind | None = None
    search: str | None = strawberry.field(default=None, description="Words in the title (case-insensitive).")
    min_price: str | None = strawberry.field(default=None, description='A decimal string, e.g. "5.00".')
    max_price: str | None = None
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



@strawberry.type
class CatalogQueries:
    @strawberry.field(description="Products on sale, newest first unless sorted otherwise.")
    async def products(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ProductFilterInput | None = None,
        sort: ProductSort | None = ProductSortValue.NEWEST,
    ) -> Connection[Product]:
        listing = filter.to_filter() if filter is not None else catalog.ProductFilter()
        return await product_page(info, listing, sort, first=first, after=after, last=last, before=before)

    @strawberry.field(description="A product; null if it does not exist or is hidden from the viewer.")
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        (product,) = await _visible_products(info, [decode_id(id, "Product", "id")])
        return product


# -- mutations --------------------------------------------------------------------------


@strawberry.input
class WholesaleTierInput:
    min_quantity: int
    unit_price: str = strawberry.field(description='A decimal string below the list price, e.g. "9.50".')


_UNSET: Any = strawberry.UNSET


@strawberry.input
class CreateProductInput:
    merchant_id: strawberry.ID
    title: str
    price: str = strawberry.field(description='A decimal string, e.g. "9.90": positive, at most two decimals.')
    delivery_kind: DeliveryKind
    description: str | None = _UNSET
    category_id: strawberry.ID | None = _UNSET
    wholesale_tiers: list[WholesaleTierInput] | None = _UNSET
    min_quantity: int | None = strawberry.field(default=_UNSET, description="Default 1.")
    max_quantity: int | None = strawberry.field(default=_UNSET, description="Default 100.")
    delivery_promise_minutes: int | None = strawberry.field(default=_UNSET, description="Default 10.")
    stock_limit: int | None = strawberry.field(
        default=_UNSET, description="DIRECT_TOPUP and MANUAL only: units on sale (null: unlimited)."
    )
    status: ProductStatus | None = strawberry.field(default=_UNSET, description="Default ACTIVE.")


@strawberry.input(description="Fields left out keep their value; null clears categoryId and stockLimit.")
class UpdateProductInput:
    id: strawberry.ID
    title: str | None = _UNSET
    price: str | None = _UNSET
    delivery_kind: DeliveryKind | None = strawberry.field(
        default=_UNSET, description="Only while the product has no keys and no orders."
    )
    description: str | None = _UNSET
    category_id: strawberry.ID | None = _UNSET
    wholesale_tiers: list[WholesaleTierInput] | None = _UNSET
    min_quantity: int | None = _UNSET
    max_quantity: int | None = _UNSET
    delivery_promise_minutes: int | None = _UNSET
    stock_limit: int | None = _UNSET
    status: ProductStatus | None = _UNSET


@strawberry.type
class CreateProductPayload:
    errors: list[UserError] = strawberry.field(default_factory=no_errors)
    product: Product | None = None


@strawberry.type
class UpdateProductPayload:
    errors: list[UserError] = strawberry.field(default_factory=no_errors)
    product: Product | None = None



def forget(loader: DataLoader[Any, Any], key: Any) -> None:
    """Drop a value this request may have loaded before changing it."""
    with contextlib.suppress(KeyError):
        loader.clear(key)


def _given(value: Any) -> Any:
    return UNCHANGED if value is strawberry.UNSET else value


def _product_fields(data: CreateProductInput | UpdateProductInput) -> ProductFields:
    category = _given(data.category_id)
    if category is not UNCHANGED and category is not None:
        category = decode_id(category, "Category", "categoryId")
    tiers = _given(data.wholesale_tiers)
    if tiers is not UNCHANGED and tiers is not None:
        tiers = [{"minQuantity": t.min_quantity, "unitPrice": t.unit_price} for t in tiers]
    return ProductFields(
        title=_given(data.title),
        description=_given(data.description),
        price=_given(data.price),
        delivery_kind=_given(data.delivery_kind),
        category_id=category,
        wholesale_tiers=tiers,
        min_quantity=_given(data.min_quantity),
        max_quantity=_given(data.max_quantity),
        delivery_promise_minutes=_given(data.delivery_promise_minutes),
        stock_limit=_given(data.stock_limit),
        status=_given(data.status),
    )



@strawberry.type
class CatalogMutations:
    @mutation(description="The shop's owner (or staff) adds a product.")
    async def create_product(self, info: Info, input: CreateProductInput) -> CreateProductPayload:
        merchant_id = decode_id(input.merchant_id, "Merchant", "merchantId")
        product = await catalog.create_product(info.context.actor, merchant_id, _product_fields(input))
        return CreateProductPayload(product=Product.from_model(product))

    @mutation(description="The shop's owner (or staff) changes a product.")
    async def update_product(self, info: Info, input: UpdateProductInput) -> UpdateProductPayload:
        product_id = decode_id(input.id, "Product", "id")
        product = await catalog.update_product(info.context.actor, product_id, _product_fields(input))
        forget(info.context.loaders.product, product.id)
        return UpdateProductPayload(product=Product.from_model(product))
