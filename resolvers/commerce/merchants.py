"""Merchants and categories: who opens a shop, staff suspending or reinstating it, the
security deposit held from its owner's wallet, who manages a shop, and the categories
products are filed under."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from tortoise.exceptions import IntegrityError

from models.accounts.users import Role, User
from models.commerce.merchants import Category, Merchant, MerchantStatus
from models.commerce.ledger import Entry
from resolvers.accounts import notifications
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce import ledger
from resolvers.commerce.inputs import clean_text, parse_amount
from resolvers.errors import ErrorCode, UserFacingError, invalid
from subscriptions import cache_tags, outbox

MERCHANT_NAME_MAX = 80
MERCHANT_DESCRIPTION_MAX = 2000
CATEGORY_NAME_MAX = 60
DEPOSIT_REASON = "merchant.deposit"
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


# -- batch loads (DataLoaders) ----------------------------------------------------------


async def get_merchants(ids: list[int]) -> list[Merchant | None]:
    found = {m.id: m for m in await Merchant.filter(id__in=ids)}
    return [found.get(i) for i in ids]

async def get_categories(ids: list[int]) -> list[Category | None]:
    found = {c.id: c for c in await Category.filter(id__in=ids)}
    return [found.get(i) for i in ids]

# -- who manages a shop -----------------------------------------------------------------


def can_manage(actor: Actor, merchant: Merchant) -> bool:
    """The shop's owner or staff (hidden products, a suspended shop's page)."""
    return permissions.allowed(actor, Action.READ_SHOP_PRIVATE, owner_id=merchant.owner_id)

# -- merchants --------------------------------------------------------------------------


async def create_merchant(actor: Actor, *, name: str, description: str = "") -> Merchant:
    """A MERCHANT opens their shop (one each); an ADMIN may open several."""
    user = permissions.require(actor, Action.OPEN_SHOP)
    name = clean_text(name, "name", minimum=2, maximum=MERCHANT_NAME_MAX)
    description = clean_text(description, "description", minimum=0, maximum=MERCHANT_DESCRIPTION_MAX, multiline=True)
    try:
        async with outbox.atomic():
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


async def find_merchant(merchant_id: int, field: str = "merchantId") -> Merchant:
    merchant = await Merchant.filter(id=merchant_id).first()
    if merchant is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such shop.", field)
    return merchant


async def set_merchant_status(actor: Actor, merchant_id: int, status: MerchantStatus) -> Merchant:
    """Staff suspend or reinstate a shop; the owner is notified."""
    permissions.require(actor, Action.SET_MERCHANT_STATUS)
    merchant = await find_merchant(merchant_id)
    if merchant.status == status:
        return merchant
    async with outbox.atomic():
        await Merchant.filter(id=merchant.id).update(status=status)
        cache_tags.touch(cache_tags.merchant(merchant.id), cache_tags.PRODUCT_LIST)  # its products' visibility
        merchant.status = status
        title = f"Your shop {merchant.name} is {'suspended' if status == MerchantStatus.SUSPENDED else 'active again'}"
        await notifications.notify(merchant.owner_id, f"MERCHANT_{status.value}", title, data={"merchantId": merchant.id})
    return merchant


async def hold_deposit(actor: Actor, merchant_id: int, amount: str, idempotency_key: str | None = None) -> Merchant:
    """An ADMIN moves a security deposit (保证金) from the owner's wallet into the shop's
    deposit account. With an idempotency key, a retried request holds the money once."""
    permissions.require(actor, Action.HOLD_MERCHANT_DEPOSIT)
    value = parse_amount(amount, "amount")
    merchant = await find_merchant(merchant_id)
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
    permissions.require(actor, Action.CREATE_CATEGORY)
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
