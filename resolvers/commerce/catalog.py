"""Merchants, categories and products: who may create and change them, what a valid product
is, who sees what, and the product list with its keyset orders."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models.accounts.users import STAFF_ROLES, Role, User
from models.commerce.catalog import Category, DeliveryKind, Merchant, MerchantStatus, Product, ProductStatus
from models.commerce.inventory import CardKey
from models.commerce.ledger import Entry
from models.commerce.orders import Order
from resolvers.commerce import ledger, pricing
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor, allowed, require
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.pagination import Page, paginate, paginate_by, parse_decimal, parse_int
from subscriptions import outbox

MERCHANT_ROLES = frozenset({Role.MERCHANT, Role.ADMIN})
MERCHANT_NAME_MAX = 80
MERCHANT_DESCRIPTION_MAX = 2000
CATEGORY_NAME_MAX = 60
TITLE_MAX = 120
PRODUCT_DESCRIPTION_MAX = 20_000
SEARCH_MAX = 100
QUANTITY_MAX = 10_000
PROMISE_MAX_MINUTES = 30 * 24 * 60
STOCK_LIMIT_MAX = 1_000_000_000
PRICE_MAX = Decimal("9999999999.99")  # NUMERIC(12,2)
DEPOSIT_REASON = "merchant.deposit"
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


# -- input cleaning ---------------------------------------------------------------------


def clean_text(value: str, field: str, *, minimum: int, maximum: int, multiline: bool = False) -> str:
    """NFC, trimmed, within length, no control characters (newlines and tabs if multiline)."""
    text = unicodedata.normalize("NFC", value).strip()
    if not minimum <= len(text) <= maximum:
        raise invalid(field, f"Give {minimum} to {maximum} characters." if minimum else f"At most {maximum} characters.")
    allowed_controls = "\n\t" if multiline else ""
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed_controls for ch in text):
        raise invalid(field, "Control characters are not allowed.")
    return text


def parse_amount(raw: str, field: str, *, allow_zero: bool = False) -> Decimal:
    """A decimal string such as "9.90": finite, positive (or zero), at most two decimals.

    Strict (issue 10): ASCII digits only (``Decimal`` also takes "١٢", exponents, "NaN"), and
    the magnitude is checked before quantizing, which fails on huge values ("1e30").
    """
    text = raw.strip() if isinstance(raw, str) else ""
    if not re.fullmatch(r"-?[0-9]{1,20}(\.[0-9]{1,20})?", text, flags=re.ASCII):
        raise invalid(field, "Give an amount such as 9.90.")
    amount = Decimal(text)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise invalid(field, "The amount must be positive." if not allow_zero else "The amount must not be negative.")
    if amount > PRICE_MAX:
        raise invalid(field, f"The amount must not exceed {PRICE_MAX}.")
    if amount != amount.quantize(pricing.CENT):
        raise invalid(field, "Amounts have at most two decimals.")
    return amount.quantize(pricing.CENT)


def _bounded_int(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise invalid(field, f"{field} must be between {low} and {high}.")
    return value


# -- batch loads (DataLoaders) ----------------------------------------------------------


async def get_merchants(ids: list[int]) -> list[Merchant | None]:
    found = {m.id: m for m in await Merchant.filter(id__in=ids)}
    return [found.get(i) for i in ids]


async def get_products(ids: list[int]) -> list[Product | None]:
    found = {p.id: p for p in await Product.filter(id__in=ids)}
    return [found.get(i) for i in ids]


async def get_categories(ids: list[int]) -> list[Category | None]:
    found = {c.id: c for c in await Category.filter(id__in=ids)}
    return [found.get(i) for i in ids]


# -- visibility -------------------------------------------------------------------------


def can_manage(actor: Actor, merchant: Merchant) -> bool:
    """The shop's owner or staff."""
    return allowed(actor, owner_id=merchant.owner_id)


def product_visible(actor: Actor, product: Product, merchant: Merchant) -> bool:
    """Listed products of active shops are public; hidden ones (or a suspended shop's) are
    seen only by the shop's owner and staff."""
    public = product.status == ProductStatus.ACTIVE and merchant.status == MerchantStatus.ACTIVE
    return public or can_manage(actor, merchant)


# -- merchants --------------------------------------------------------------------------


async def create_merchant(actor: Actor, *, name: str, description: str = "") -> Merchant:
    """A MERCHANT opens their shop (one each); an ADMIN may open several."""
    user = require(actor, roles=MERCHANT_ROLES)
    name = clean_text(name, "name", minimum=2, maximum=MERCHANT_NAME_MAX)
    description = clean_text(description, "description", minimum=0, maximum=MERCHANT_DESCRIPTION_MAX, multiline=True)
    try:
        async with in_transaction():
            # Serialise one owner's concurrent attempts: a row lock on PostgreSQL; SQLite runs
            # one write transaction at a time anyway. (Not values_list(): Tortoise drops FOR
            # UPDATE from it.)
            await User.filter(id=user.id).select_for_update().first()
            if user.role != Role.ADMIN and await Merchant.filter(owner_id=user.id).exists():
                raise UserFacingError(ErrorCode.DUPLICATE, "You already have a shop.")
            if await Merchant.filter(name__iexact=name).exists():
                raise UserFacingError(ErrorCode.DUPLICATE, "A shop with this name exists.", "name")
            return await Merchant.create(owner_id=user.id, name=name, description=description)
    except IntegrityError:  # the unique name, taken concurrently
        raise UserFacingError(ErrorCode.DUPLICATE, "A shop with this name exists.", "name") from None


async def _merchant(merchant_id: int, field: str = "merchantId") -> Merchant:
    merchant = await Merchant.filter(id=merchant_id).first()
    if merchant is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such shop.", field)
    return merchant


async def get_merchant(merchant_id: int) -> Merchant | None:
    return await Merchant.filter(id=merchant_id).first()


async def set_merchant_status(actor: Actor, merchant_id: int, status: MerchantStatus) -> Merchant:
    """Staff suspend or reinstate a shop; the owner is notified."""
    require(actor, roles=STAFF_ROLES)
    merchant = await _merchant(merchant_id)
    if merchant.status == status:
        return merchant
    async with outbox.atomic():
        await Merchant.filter(id=merchant.id).update(status=status)
        merchant.status = status
        title = f"Your shop {merchant.name} is {'suspended' if status == MerchantStatus.SUSPENDED else 'active again'}"
        await notifications.notify(merchant.owner_id, f"MERCHANT_{status.value}", title, data={"merchantId": merchant.id})
    return merchant


async def hold_deposit(actor: Actor, merchant_id: int, amount: str, idempotency_key: str | None = None) -> Merchant:
    """Staff move a security deposit (保证金) from the owner's wallet into the shop's deposit
    account. With an idempotency key, a retried request holds the money once."""
    require(actor, roles=STAFF_ROLES)
    value = parse_amount(amount, "amount")
    merchant = await _merchant(merchant_id)
    if idempotency_key is not None:
        key = idempotency_key.strip()
        if not 8 <= len(key) <= 80:
            raise invalid("idempotencyKey", "The idempotency key must be 8 to 80 characters.")
        reference = f"{merchant.id}:{key}"
    else:
        reference = f"{merchant.id}:{uuid.uuid4().hex}"
    deposit = ledger.merchant_deposit(merchant.id)
    legs = [(ledger.wallet(merchant.owner_id), -value), (deposit, value)]
    try:
        posted = await ledger.post(DEPOSIT_REASON, reference, legs, memo=f"deposit held by user {actor.user_id}")
    except UserFacingError as error:
        if error.code == ErrorCode.INSUFFICIENT_BALANCE:
            raise UserFacingError(error.code, "The owner's wallet does not hold this amount.", "amount") from None
        raise
    if not posted:  # a retry: fine if it asked for the same amount, a clash otherwise
        held = await Entry.filter(
            posting__reason=DEPOSIT_REASON, posting__reference=reference, account__code=deposit
        ).values_list("amount", flat=True)
        if [Decimal(a) for a in held] != [value]:
            raise UserFacingError(
                ErrorCode.DUPLICATE, "This idempotency key was used for another amount.", "idempotencyKey"
            )
    return merchant


# -- categories -------------------------------------------------------------------------


async def create_category(actor: Actor, *, name: str, slug: str, parent_id: int | None = None) -> Category:
    require(actor, roles=STAFF_ROLES)
    name = clean_text(name, "name", minimum=1, maximum=CATEGORY_NAME_MAX)
    slug = slug.strip()
    if len(slug) > CATEGORY_NAME_MAX or not _SLUG.match(slug):
        raise invalid("slug", "A slug is lower-case letters and digits joined by single hyphens.")
    if parent_id is not None and not await Category.filter(id=parent_id).exists():
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such parent category.", "parentId")
    if await Category.filter(slug=slug).exists():
        raise UserFacingError(ErrorCode.DUPLICATE, "A category with this slug exists.", "slug")
    try:
        return await Category.create(name=name, slug=slug, parent_id=parent_id)
    except IntegrityError:
        raise UserFacingError(ErrorCode.DUPLICATE, "A category with this slug exists.", "slug") from None


async def list_categories() -> list[Category]:
    return list(await Category.all().order_by("name", "id"))


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


_NULLABLE = frozenset({"description", "category_id", "wholesale_tiers", "stock_limit"})
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
        changes["min_quantity"] = _bounded_int(given["min_quantity"], "minQuantity", 1, QUANTITY_MAX)
    if "max_quantity" in given:
        changes["max_quantity"] = _bounded_int(given["max_quantity"], "maxQuantity", 1, QUANTITY_MAX)
    if "delivery_promise_minutes" in given:
        changes["delivery_promise_minutes"] = _bounded_int(
            given["delivery_promise_minutes"], "deliveryPromiseMinutes", 0, PROMISE_MAX_MINUTES
        )
    if "stock_limit" in given and given["stock_limit"] is not None:
        changes["stock_limit"] = _bounded_int(given["stock_limit"], "stockLimit", 0, STOCK_LIMIT_MAX)
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


def _owned_merchant(actor: Actor, merchant: Merchant) -> None:
    """The owner (or staff) may change a shop's catalogue; a suspended shop's owner may not."""
    user = require(actor, owner_id=merchant.owner_id)
    if merchant.status != MerchantStatus.ACTIVE and not user.is_staff:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This shop is suspended.", "merchantId")


async def create_product(actor: Actor, merchant_id: int, fields: ProductFields) -> Product:
    require(actor)
    merchant = await _merchant(merchant_id)
    _owned_merchant(actor, merchant)
    for name in ("title", "price", "delivery_kind"):
        if getattr(fields, name) is UNCHANGED:
            raise invalid(_GRAPHQL_NAMES[name], f"{_GRAPHQL_NAMES[name]} is required.")
    values = {**_DEFAULTS, **await _validate(fields, None)}
    return await Product.create(merchant_id=merchant.id, currency="CNY", **values)


async def update_product(actor: Actor, product_id: int, fields: ProductFields) -> Product:
    require(actor)
    product = await Product.filter(id=product_id).select_related("merchant").first()
    if product is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", "id")
    _owned_merchant(actor, product.merchant)
    changes = await _validate(fields, product)
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
    await Product.filter(id=product.id).update(**changes, updated_at=datetime.now(UTC))
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
    if user.is_staff:
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
            queryset = queryset.filter(title__icontains=search)
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
