"""Merchants, categories, products and card-key imports in the graph.

Thin: GraphQL values in, resolvers.commerce.catalog / resolvers.commerce.inventory called, types out. Every
related object (merchant, category, stock, balances) comes through a request-scoped
DataLoader, so a page of products costs the same few queries whatever its size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader

from models.commerce.catalog import Category as CategoryModel
from models.commerce.catalog import DeliveryKind as DeliveryKindValue
from models.commerce.catalog import Merchant as MerchantModel
from models.commerce.catalog import MerchantStatus as MerchantStatusValue
from models.commerce.catalog import Product as ProductModel
from models.commerce.catalog import ProductStatus as ProductStatusValue
from resolvers.commerce import catalog, inventory, ledger, pricing
from resolvers.commerce.catalog import UNCHANGED, ProductFields
from resolvers.commerce.catalog import ProductSort as ProductSortValue
from schema.accounts.users import User
from schema.base import Connection, Money, UserError, decode_id, run_mutation
from schema.context import Info

if TYPE_CHECKING:
    from schema.community.types import Post, PostKind, Topic

MerchantStatus = strawberry.enum(MerchantStatusValue, name="MerchantStatus")
DeliveryKind = strawberry.enum(
    DeliveryKindValue,
    name="DeliveryKind",
    description="CARD_KEY: imported keys, delivered at once. DIRECT_TOPUP: the shop's supplier "
    "tops up the buyer's account. MANUAL: the merchant delivers by hand, within the promise.",
)
ProductStatus = strawberry.enum(ProductStatusValue, name="ProductStatus", description="HIDDEN: unlisted.")
ProductSort = strawberry.enum(ProductSortValue, name="ProductSort")

CURRENCY = "CNY"


def _ids(node_ids: Iterable[str]) -> list[int | None]:
    parsed: list[int | None] = []
    for node_id in node_ids:
        try:
            parsed.append(int(node_id))
        except ValueError:
            parsed.append(None)
    return parsed


# -- types ------------------------------------------------------------------------------


@strawberry.type
class Category(relay.Node):
    id: relay.NodeID[int]
    name: str
    slug: str
    _model: strawberry.Private[CategoryModel]

    @strawberry.field
    async def parent(self, info: Info) -> Category | None:
        if self._model.parent_id is None:
            return None
        parent = await info.context.loaders.category.load(self._model.parent_id)
        return Category.from_model(parent) if parent is not None else None

    @classmethod
    def from_model(cls, category: CategoryModel) -> Category:
        return cls(id=category.id, name=category.name, slug=category.slug, _model=category)

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Category | None]:
        ids = _ids(node_ids)
        found = await info.context.loaders.category.load_many([i for i in ids if i is not None])
        by_id = {c.id: c for c in found if c is not None}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


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
    async def merchant(self, info: Info) -> Merchant:
        merchant = await info.context.loaders.merchant.load(self._model.merchant_id)
        return Merchant.from_model(merchant)

    @strawberry.field
    async def category(self, info: Info) -> Category | None:
        if self._model.category_id is None:
            return None
        category = await info.context.loaders.category.load(self._model.category_id)
        return Category.from_model(category) if category is not None else None

    @strawberry.field(description="Visible posts about this product (reviews, showcases, ...), newest first.")
    async def posts(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        kind: Annotated[PostKind, strawberry.lazy("schema.community.types")] | None = None,
    ) -> Connection[Annotated[Post, strawberry.lazy("schema.community.types")]]:
        from schema.community.posts import product_posts

        return await product_posts(info, self.id, first, after, kind)

    @strawberry.field(description="How many users have a delivered or completed order of this product.")
    async def buyer_count(self, info: Info) -> int:
        return await info.context.loaders.buyer_count.load(self.id)

    @strawberry.field(description="The purchaser circle: a topic where buyers of this product talk.")
    async def circle(self, info: Info) -> Annotated[Topic, strawberry.lazy("schema.community.types")] | None:
        from schema.community.topics import product_circle

        return await product_circle(info, self.id)

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
        return await _visible_products(info, _ids(node_ids))


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


@strawberry.type(description="A shop.")
class Merchant(relay.Node):
    id: relay.NodeID[int]
    name: str
    description: str
    status: MerchantStatus
    created_at: datetime
    _model: strawberry.Private[MerchantModel]

    @strawberry.field
    async def owner(self, info: Info) -> User | None:
        user = await info.context.loaders.user.load(self._model.owner_id)
        return User.from_model(user) if user is not None and user.is_active else None

    @strawberry.field(description="The security deposit (保证金) the platform holds for this shop.")
    async def deposit(self, info: Info) -> Money:
        amount = await info.context.loaders.account_balance.load(ledger.merchant_deposit(self.id))
        return Money(amount=amount, currency=CURRENCY)

    @strawberry.field(description="The shop's earnings balance: for its owner and staff; null otherwise.")
    async def balance(self, info: Info) -> Money | None:
        if not catalog.can_manage(info.context.actor, self._model):
            return None
        amount = await info.context.loaders.account_balance.load(ledger.merchant_balance(self.id))
        return Money(amount=amount, currency=CURRENCY)

    @strawberry.field(description="The shop's products (hidden ones too, for its owner and staff).")
    async def products(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        sort: ProductSort | None = ProductSortValue.NEWEST,
    ) -> Connection[Product]:
        listing = catalog.ProductFilter(merchant_id=self.id, include_hidden=True)
        return await _product_page(info, listing, sort, first=first, after=after, last=last, before=before)

    @classmethod
    def from_model(cls, merchant: MerchantModel) -> Merchant:
        return cls(
            id=merchant.id,
            name=merchant.name,
            description=merchant.description,
            status=merchant.status,
            created_at=merchant.created_at,
            _model=merchant,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Merchant | None]:
        ids = _ids(node_ids)
        found = await info.context.loaders.merchant.load_many([i for i in ids if i is not None])
        by_id = {m.id: m for m in found if m is not None}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


async def _product_page(
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
        return await _product_page(info, listing, sort, first=first, after=after, last=last, before=before)

    @strawberry.field(description="A product; null if it does not exist or is hidden from the viewer.")
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        (product,) = await _visible_products(info, [decode_id(id, "Product", "id")])
        return product

    @strawberry.field
    async def merchant(self, info: Info, id: strawberry.ID) -> Merchant | None:
        merchant = await info.context.loaders.merchant.load(decode_id(id, "Merchant", "id"))
        return Merchant.from_model(merchant) if merchant is not None else None

    @strawberry.field(description="Every category, by name.")
    async def categories(self, info: Info) -> list[Category]:
        found = await catalog.list_categories()
        info.context.loaders.category.prime_many({c.id: c for c in found})
        return [Category.from_model(c) for c in found]


# -- mutations --------------------------------------------------------------------------


@strawberry.input
class CreateMerchantInput:
    name: str
    description: str = ""


@strawberry.type
class CreateMerchantPayload:
    errors: list[UserError]
    merchant: Merchant | None = None


@strawberry.input
class SetMerchantStatusInput:
    merchant_id: strawberry.ID
    status: MerchantStatus


@strawberry.type
class SetMerchantStatusPayload:
    errors: list[UserError]
    merchant: Merchant | None = None


@strawberry.input
class HoldMerchantDepositInput:
    merchant_id: strawberry.ID
    amount: str = strawberry.field(description='A decimal string, e.g. "500.00".')
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key holds the money once (8 to 80 characters)."
    )


@strawberry.type
class HoldMerchantDepositPayload:
    errors: list[UserError]
    merchant: Merchant | None = None


@strawberry.input
class CreateCategoryInput:
    name: str
    slug: str = strawberry.field(description='Lower-case letters and digits joined by hyphens, e.g. "game-cards".')
    parent_id: strawberry.ID | None = None


@strawberry.type
class CreateCategoryPayload:
    errors: list[UserError]
    category: Category | None = None


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
    errors: list[UserError]
    product: Product | None = None


@strawberry.type
class UpdateProductPayload:
    errors: list[UserError]
    product: Product | None = None


@strawberry.input
class ImportCardKeysInput:
    product_id: strawberry.ID
    keys: list[str] = strawberry.field(
        description="One secret each (at most 10,000 per request, 500 characters each); trimmed, "
        "blanks dropped, duplicates skipped."
    )


@strawberry.type
class ImportCardKeysPayload:
    errors: list[UserError]
    imported: int | None = strawberry.field(default=None, description="New keys stored.")
    duplicates: int | None = strawberry.field(
        default=None, description="Keys repeated in the request or already stored for the product."
    )
    blank: int | None = strawberry.field(default=None, description="Empty entries dropped.")
    product: Product | None = None


def _forget(loader: DataLoader[Any, Any], key: Any) -> None:
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
    @strawberry.mutation(description="A MERCHANT opens their shop (one each; an ADMIN may open several).")
    async def create_merchant(self, info: Info, input: CreateMerchantInput) -> CreateMerchantPayload:
        async def action() -> dict[str, Any]:
            merchant = await catalog.create_merchant(info.context.actor, name=input.name, description=input.description)
            return {"merchant": Merchant.from_model(merchant)}

        return await run_mutation(CreateMerchantPayload, action())

    @strawberry.mutation(description="Staff: suspend or reinstate a shop.")
    async def set_merchant_status(self, info: Info, input: SetMerchantStatusInput) -> SetMerchantStatusPayload:
        async def action() -> dict[str, Any]:
            merchant_id = decode_id(input.merchant_id, "Merchant", "merchantId")
            merchant = await catalog.set_merchant_status(info.context.actor, merchant_id, input.status)
            return {"merchant": Merchant.from_model(merchant)}

        return await run_mutation(SetMerchantStatusPayload, action())

    @strawberry.mutation(description="Staff: move a security deposit from the owner's wallet to the shop's deposit.")
    async def hold_merchant_deposit(self, info: Info, input: HoldMerchantDepositInput) -> HoldMerchantDepositPayload:
        async def action() -> dict[str, Any]:
            merchant_id = decode_id(input.merchant_id, "Merchant", "merchantId")
            merchant = await catalog.hold_deposit(
                info.context.actor, merchant_id, input.amount, idempotency_key=input.idempotency_key
            )
            return {"merchant": Merchant.from_model(merchant)}

        return await run_mutation(HoldMerchantDepositPayload, action())

    @strawberry.mutation(description="Staff: add a category.")
    async def create_category(self, info: Info, input: CreateCategoryInput) -> CreateCategoryPayload:
        async def action() -> dict[str, Any]:
            parent_id = decode_id(input.parent_id, "Category", "parentId") if input.parent_id is not None else None
            category = await catalog.create_category(
                info.context.actor, name=input.name, slug=input.slug, parent_id=parent_id
            )
            return {"category": Category.from_model(category)}

        return await run_mutation(CreateCategoryPayload, action())

    @strawberry.mutation(description="The shop's owner (or staff) adds a product.")
    async def create_product(self, info: Info, input: CreateProductInput) -> CreateProductPayload:
        async def action() -> dict[str, Any]:
            merchant_id = decode_id(input.merchant_id, "Merchant", "merchantId")
            product = await catalog.create_product(info.context.actor, merchant_id, _product_fields(input))
            return {"product": Product.from_model(product)}

        return await run_mutation(CreateProductPayload, action())

    @strawberry.mutation(description="The shop's owner (or staff) changes a product.")
    async def update_product(self, info: Info, input: UpdateProductInput) -> UpdateProductPayload:
        async def action() -> dict[str, Any]:
            product_id = decode_id(input.id, "Product", "id")
            product = await catalog.update_product(info.context.actor, product_id, _product_fields(input))
            _forget(info.context.loaders.product, product.id)
            return {"product": Product.from_model(product)}

        return await run_mutation(UpdateProductPayload, action())

    @strawberry.mutation(description="The shop's owner imports card keys into a CARD_KEY product.")
    async def import_card_keys(self, info: Info, input: ImportCardKeysInput) -> ImportCardKeysPayload:
        async def action() -> dict[str, Any]:
            product_id = decode_id(input.product_id, "Product", "productId")
            result = await inventory.import_card_keys(info.context.actor, product_id, input.keys)
            product = await catalog.get_product(product_id)
            _forget(info.context.loaders.card_key_stock, product_id)
            return {
                "imported": result.imported,
                "duplicates": result.duplicates,
                "blank": result.blank,
                "product": Product.from_model(product) if product is not None else None,
            }

        return await run_mutation(ImportCardKeysPayload, action())
