"""Products: what a valid product is, who may create and change one, who sees what, and
the product list with its keyset orders. (Shops and categories: merchants.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tortoise.expressions import Q

from models.commerce.catalog import DeliveryKind, Product, ProductStatus
from models.commerce.merchants import Category, Merchant, MerchantStatus
from models.commerce.inventory import CardKey
from models.commerce.orders import Order
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce import pricing, promises
from resolvers.commerce.inputs import bounded_int, clean_text, parse_amount
from resolvers.commerce.merchants import can_manage, find_merchant
from resolvers.discovery import indexing
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate, paginate_by, parse_decimal, parse_int
from subscriptions import cache_tags, outbox

TITLE_MAX = 120
PRODUCT_DESCRIPTION_MAX = 20_000
SEARCH_MAX = 100
QUANTITY_MAX = 10_000
PROMISE_MAX_MINUTES = 30 * 24 * 60
STOCK_LIMIT_MAX = 1_000_000_000


async def get_products(ids: list[int]) -> list[Product | None]:
    """Batch load for DataLoaders."""
    found = {p.id: p for p in await Product.filter(id__in=ids)}
    return [found.get(i) for i in ids]


def product_visible(actor: Actor, product: Product, merchant: Merchant) -> bool:
    """Listed products of active shops are public; hidden ones (or a suspended shop's) are
    seen only by the shop's owner and staff."""
    public = product.status == ProductStatus.ACTIVE and merchant.status == MerchantStatus.ACTIVE
    return public or can_manage(actor, merchant)

# -- products ---------------------------------------------------------------------------


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: A field left out of an update (``None`` is a value: "no category", "unlimited stock").
UNCHANGED: Any = _Unchanged()


@dataclass(frozen=True)
class ProductFields:
    """What a merchant sets on a product; UNCHANGED fields keep their value (or default)."""

    title: Any = UNCHANGED
    description: Any = UNCHANGED
    price: Any = UNCHANGED  # decimal string
    delivery_kind: Any = UNCHANGED
    category_id: Any = UNCHANGED
    wholesale_tiers: Any = UNCHANGED  # [{"minQuantity": int, "unitPrice": str}]
    min_quantity: Any = UNCHANGED
    max_quantity: Any = UNCHANGED
    delivery_promise_minutes: Any = UNCHANGED
    stock_limit: Any = UNCHANGED
    status: Any = UNCHANGED
    late_compensation: Any = UNCHANGED  # a promises.CompensationSpec, or None for none


_DEFAULTS: dict[str, Any] = {
    "description": "",
    "category_id": None,
    "wholesale_tiers": [],
    "min_quantity": 1,
    "max_quantity": 100,
    "delivery_promise_minutes": 10,
    "stock_limit": None,
    "status": ProductStatus.ACTIVE,
}


_NULLABLE = frozenset({"description", "category_id", "wholesale_tiers", "stock_limit", "late_compensation"})
_GRAPHQL_NAMES = {
    "title": "title",
    "description": "description",
    "price": "price",
    "delivery_kind": "deliveryKind",
    "category_id": "categoryId",
    "wholesale_tiers": "wholesaleTiers",
    "min_quantity": "minQuantity",
    "max_quantity": "maxQuantity",
    "delivery_promise_minutes": "deliveryPromiseMinutes",
    "stock_limit": "stockLimit",
    "status": "status",
    "late_compensation": "lateCompensation",
}


async def _validate(fields: ProductFields, current: Product | None) -> dict[str, Any]:
    """The model values to write: every given field checked, and the result as a whole.

    Raises INVALID_INPUT (or NOT_FOUND for a category) before anything is written.
    """
    given = {k: v for k, v in vars(fields).items() if v is not UNCHANGED}
    for name, value in given.items():
        if value is None and name not in _NULLABLE:
            raise invalid(_GRAPHQL_NAMES[name], f"{_GRAPHQL_NAMES[name]} cannot be null.")
    changes: dict[str, Any] = {}
    if "title" in given:
        changes["title"] = clean_text(given["title"], "title", minimum=1, maximum=TITLE_MAX)
    if "description" in given:
        changes["description"] = clean_text(
            given["description"] or "", "description", minimum=0, maximum=PRODUCT_DESCRIPTION_MAX, multiline=True
        )
    if "price" in given:
        changes["price"] = parse_amount(given["price"], "price")
    if "delivery_kind" in given:
        changes["delivery_kind"] = DeliveryKind(given["delivery_kind"])
    if "status" in given:
        changes["status"] = ProductStatus(given["status"])
    if "category_id" in given:
        category_id = given["category_id"]
        if category_id is not None and not await Category.filter(id=category_id).exists():
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such category.", "categoryId")
        changes["category_id"] = category_id
    if "min_quantity" in given:
        changes["min_quantity"] = bounded_int(given["min_quantity"], "minQuantity", 1, QUANTITY_MAX)
    if "max_quantity" in given:
        changes["max_quantity"] = bounded_int(given["max_quantity"], "maxQuantity", 1, QUANTITY_MAX)
    if "delivery_promise_minutes" in given:
        changes["delivery_promise_minutes"] = bounded_int(
            given["delivery_promise_minutes"], "deliveryPromiseMinutes", 0, PROMISE_MAX_MINUTES
        )
    if "stock_limit" in given and given["stock_limit"] is not None:
        changes["stock_limit"] = bounded_int(given["stock_limit"], "stockLimit", 0, STOCK_LIMIT_MAX)
    elif "stock_limit" in given:
        changes["stock_limit"] = None
    if "wholesale_tiers" in given:
        tiers = pricing.parse_tiers(given["wholesale_tiers"] or [])
        changes["wholesale_tiers"] = [{"minQuantity": q, "unitPrice": str(p.quantize(pricing.CENT))} for q, p in tiers]

    # The product as it would be, checked as a whole.
    def merged(name: str) -> Any:
        if name in changes:
            return changes[name]
        return getattr(current, name) if current is not None else _DEFAULTS[name]

    if merged("max_quantity") < merged("min_quantity"):
        field = "maxQuantity" if "max_quantity" in changes else "minQuantity"
        raise invalid(field, "The maximum quantity is below the minimum.")
    kind = merged("delivery_kind")
    if kind == DeliveryKind.CARD_KEY and merged("stock_limit") is not None:
        if "stock_limit" in changes:
            raise invalid("stockLimit", "CARD_KEY stock is the number of imported keys; leave stockLimit empty.")
        changes["stock_limit"] = None  # switching to CARD_KEY drops the old limit
    price = Decimal(merged("price"))
    for tier in pricing.parse_tiers(merged("wholesale_tiers")):
        quantity, unit = tier
        if unit >= price:
            raise invalid("wholesaleTiers", "A wholesale price must be below the list price.")
        if quantity > merged("max_quantity"):
            raise invalid("wholesaleTiers", "A wholesale tier starts above the maximum quantity.")
    return changes


def _owned_merchant(actor: Actor, merchant: Merchant, action: Action) -> None:
    """The owner (or an ADMIN) may change a shop's catalogue; a suspended shop's owner may not."""
    user = permissions.require(actor, action, owner_id=merchant.owner_id)
    if merchant.status != MerchantStatus.ACTIVE and not permissions.permits(user, action):
        raise UserFacingError(ErrorCode.INVALID_STATE, "This shop is suspended.", "merchantId")


async def create_product(actor: Actor, merchant_id: int, fields: ProductFields) -> Product:
    permissions.require_signed_in(actor)
    merchant = await find_merchant(merchant_id)
    _owned_merchant(actor, merchant, Action.CREATE_PRODUCT)
    for name in ("title", "price", "delivery_kind"):
        if getattr(fields, name) is UNCHANGED:
            raise invalid(_GRAPHQL_NAMES[name], f"{_GRAPHQL_NAMES[name]} is required.")
    values = {**_DEFAULTS, **await _validate(fields, None)}
    if fields.late_compensation is not UNCHANGED:
        values.update(await promises.compensation_fields(fields.late_compensation, merchant.id, None))
    async with outbox.atomic():  # the product and its search index row commit together
        product = await Product.create(merchant_id=merchant.id, currency="CNY", **values)
        cache_tags.touch(cache_tags.product(product.id), cache_tags.PRODUCT_LIST)
        await indexing.index_product(product.id)
    return product


async def update_product(actor: Actor, product_id: int, fields: ProductFields) -> Product:
    permissions.require_signed_in(actor)
    product = await Product.filter(id=product_id).select_related("merchant").first()
    if product is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", "id")
    _owned_merchant(actor, product.merchant, Action.UPDATE_PRODUCT)
    changes = await _validate(fields, product)
    if fields.late_compensation is not UNCHANGED:
        changes.update(await promises.compensation_fields(fields.late_compensation, product.merchant_id, product.id))
    changes = {k: v for k, v in changes.items() if getattr(product, k) != v}
    if not changes:
        return product
    if "delivery_kind" in changes and (
        await CardKey.filter(product_id=product.id).exists() or await Order.filter(product_id=product.id).exists()
    ):
        raise UserFacingError(
            ErrorCode.INVALID_STATE, "The delivery kind cannot change once keys or orders exist.", "deliveryKind"
        )
    # Only the changed columns are written: sold counts, ratings and stock moved by orders in
    # the meantime are not overwritten with what we read.
    async with outbox.atomic():
        await Product.filter(id=product.id).update(**changes, updated_at=datetime.now(UTC))
        # Price, visibility, stock limit, any field: the product, its stock and the lists
        # (membership and order may change) of every response cache (issue 15).
        cache_tags.touch(cache_tags.product(product.id), cache_tags.stock(product.id), cache_tags.PRODUCT_LIST)
        if {"title", "description", "category_id"} & changes.keys():
            await indexing.index_product(product.id)
    return await Product.get(id=product.id)


async def get_product(product_id: int) -> Product | None:
    return await Product.filter(id=product_id).first()


# -- the product list -------------------------------------------------------------------


class ProductSort(StrEnum):
    NEWEST = "NEWEST"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    BEST_SELLING = "BEST_SELLING"


@dataclass(frozen=True)
class ProductFilter:
    merchant_id: int | None = None
    category_id: int | None = None
    delivery_kind: DeliveryKind | None = None
    search: str | None = None
    min_price: str | None = None
    max_price: str | None = None
    #: Also hidden products (and those of suspended shops) that the viewer manages.
    include_hidden: bool = False


def _visibility(actor: Actor, include_hidden: bool) -> Q | None:
    public = Q(status=ProductStatus.ACTIVE, merchant__status=MerchantStatus.ACTIVE)
    user = actor.user
    if not include_hidden or user is None:
        return public
    if permissions.permits(user, Action.READ_SHOP_PRIVATE):
        return None
    return public | Q(merchant__owner_id=user.id)


async def list_products(
    actor: Actor,
    filter: ProductFilter | None = None,
    sort: ProductSort = ProductSort.NEWEST,
    **page: Any,
) -> Page[Product]:
    """One page of the products the actor may see; the merchant comes in the same query."""
    filter = filter or ProductFilter()
    queryset = Product.all().select_related("merchant")
    visibility = _visibility(actor, filter.include_hidden)
    if visibility is not None:
        queryset = queryset.filter(visibility)
    if filter.merchant_id is not None:
        queryset = queryset.filter(merchant_id=filter.merchant_id)
    if filter.category_id is not None:
        queryset = queryset.filter(category_id=filter.category_id)
    if filter.delivery_kind is not None:
        queryset = queryset.filter(delivery_kind=filter.delivery_kind)
    if filter.search is not None:
        search = clean_text(filter.search, "filter.search", minimum=0, maximum=SEARCH_MAX)
        if search:
            # Superseded by the `search` query (resolvers/discovery/search.py); kept for clients
            # of this filter, now on the same index: every segmented term, in any indexed field.
            queryset = queryset.filter(id__in=await indexing.matching_products(search))
    low = parse_amount(filter.min_price, "filter.minPrice", allow_zero=True) if filter.min_price is not None else None
    high = parse_amount(filter.max_price, "filter.maxPrice", allow_zero=True) if filter.max_price is not None else None
    if low is not None and high is not None and low > high:
        raise invalid("filter.maxPrice", "maxPrice is below minPrice.")
    if low is not None:
        queryset = queryset.filter(price__gte=low)
    if high is not None:
        queryset = queryset.filter(price__lte=high)

    if sort == ProductSort.PRICE_ASC:
        return await paginate_by(queryset, "price", descending=False, parse=parse_decimal, **page)
    if sort == ProductSort.PRICE_DESC:
        return await paginate_by(queryset, "price", descending=True, parse=parse_decimal, **page)
    if sort == ProductSort.BEST_SELLING:
        return await paginate_by(queryset, "sold_count", descending=True, parse=parse_int, **page)
    return await paginate(queryset, newest_first=True, **page)


def promise_text(minutes: int) -> str:
    """ "Delivered within 10 minutes", "... within 2 hours 30 minutes", "... within 3 days"."""
    if minutes <= 0:
        return "Delivered instantly"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((days, "day"), (hours, "hour"), (mins, "minute")) if n]
    return "Delivered within " + " ".join(parts)
