"""Self-service onboarding: a user applies to open a shop, an ADMIN approves or rejects.

On approval, in one transaction: the shop is created (its name checked again), a BUYER
applicant becomes a MERCHANT, and the deposit (``KAMENG_MERCHANT_DEPOSIT``) is held from the
applicant's wallet into ``deposit:<shop>`` (reason ``merchant.deposit``, reference
``application:<id>``). If the wallet is short the approval still stands: the shop is created
``PENDING_DEPOSIT`` (unlisted, its products cannot be ordered) and its owner pays the deposit
later with ``payMerchantDeposit``, which activates it. Nothing is ever held twice: the
posting's reference is the shop's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tortoise.exceptions import IntegrityError

from kameng.settings import get_settings
from models.accounts.users import Role, User
from models.commerce.merchants import Merchant, MerchantStatus
from models.commerce.onboarding import ApplicationStatus, MerchantApplication
from resolvers.accounts import notifications, permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce import ledger
from resolvers.commerce.inputs import clean_text
from resolvers.commerce.merchants import MERCHANT_DESCRIPTION_MAX, MERCHANT_NAME_MAX, find_merchant
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.pagination import Page, paginate
from subscriptions import cache_tags, outbox

DEPOSIT_REASON = "merchant.deposit"
CONTACT_MAX = 200
NOTE_MAX = 300


async def apply(actor: Actor, *, shop_name: str, description: str, contact: str) -> MerchantApplication:
    """A signed-in user asks to open a shop: one pending application at a time, and none
    for a user who has a shop already."""
    user = permissions.require_signed_in(actor)
    name = clean_text(shop_name, "shopName", minimum=2, maximum=MERCHANT_NAME_MAX)
    about = clean_text(description, "description", minimum=0, maximum=MERCHANT_DESCRIPTION_MAX, multiline=True)
    reach = clean_text(contact, "contact", minimum=3, maximum=CONTACT_MAX)
    async with outbox.atomic():
        await User.filter(id=user.id).select_for_update().first()  # one applicant's attempts, one at a time
        if await Merchant.filter(owner_id=user.id).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "You already have a shop.")
        if await MerchantApplication.filter(applicant_id=user.id, status=ApplicationStatus.PENDING).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "Your application is waiting for review already.")
        if await Merchant.filter(name__iexact=name).exists():
            raise UserFacingError(ErrorCode.DUPLICATE, "A shop with this name exists.", "shopName")
        return await MerchantApplication.create(applicant_id=user.id, shop_name=name, description=about, contact=reach)


async def _pending(application_id: int) -> MerchantApplication:
    application = await MerchantApplication.filter(id=application_id).select_for_update().first()
    if application is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such application.", "applicationId")
    if application.status != ApplicationStatus.PENDING:
        raise UserFacingError(ErrorCode.INVALID_STATE, f"This application is {application.status.value} already.")
    return application


async def approve(actor: Actor, application_id: int, note: str = "") -> MerchantApplication:
    """An ADMIN approves: the shop exists, the applicant is a MERCHANT, the deposit is held
    (or the shop waits for it, PENDING_DEPOSIT)."""
    admin = permissions.require(actor, Action.REVIEW_MERCHANT_APPLICATION)
    note = clean_text(note, "note", minimum=0, maximum=NOTE_MAX)
    try:
        async with outbox.atomic():
            application = await _pending(application_id)
            applicant = await User.filter(id=application.applicant_id).select_for_update().get()
            if await Merchant.filter(name__iexact=application.shop_name).exists():
                raise UserFacingError(ErrorCode.DUPLICATE, "A shop with this name exists now; reject and ask again.")
            shop = await Merchant.create(
                owner_id=applicant.id, name=application.shop_name, description=application.description,
                status=MerchantStatus.PENDING_DEPOSIT,
            )
            if applicant.role == Role.BUYER:
                await User.filter(id=applicant.id).update(role=Role.MERCHANT)
            funded = await _hold_deposit(shop)
            now = datetime.now(UTC)
            await MerchantApplication.filter(id=application.id).update(
                status=ApplicationStatus.APPROVED, reviewed_by_id=admin.id, reviewed_at=now, merchant_id=shop.id,
                review_note=note,
            )
            body = "Your deposit is held: the shop is open." if funded else (
                f"Top up your wallet with {get_settings().merchant_deposit} and pay the deposit to open it.")
            await notifications.notify(applicant.id, "MERCHANT_APPLICATION_APPROVED",
                                       f"Your shop {shop.name} is approved", body, {"merchantId": shop.id})
    except IntegrityError:  # the unique shop name, taken concurrently
        raise UserFacingError(ErrorCode.DUPLICATE, "A shop with this name exists now; reject and ask again.") from None
    return await MerchantApplication.get(id=application_id)


async def reject(actor: Actor, application_id: int, note: str) -> MerchantApplication:
    admin = permissions.require(actor, Action.REVIEW_MERCHANT_APPLICATION)
    note = clean_text(note, "note", minimum=3, maximum=NOTE_MAX)
    async with outbox.atomic():
        application = await _pending(application_id)
        await MerchantApplication.filter(id=application.id).update(
            status=ApplicationStatus.REJECTED, reviewed_by_id=admin.id, reviewed_at=datetime.now(UTC), review_note=note,
        )
        await notifications.notify(application.applicant_id, "MERCHANT_APPLICATION_REJECTED",
                                   f"Your application for {application.shop_name} was declined", note,
                                   {"applicationId": application.id})
    return await MerchantApplication.get(id=application_id)


async def _hold_deposit(shop: Merchant) -> bool:
    """Inside a transaction: hold the configured deposit from the owner's wallet and open
    the shop; False (nothing changed) if the wallet is short."""
    amount = get_settings().merchant_deposit
    if amount > 0:
        legs = [(ledger.wallet(shop.owner_id), -amount), (ledger.merchant_deposit(shop.id), amount)]
        try:
            async with outbox.atomic():  # a savepoint: a short wallet rolls back only this
                await ledger.post(DEPOSIT_REASON, f"shop:{shop.id}", legs, memo="deposit held at onboarding")
        except UserFacingError as error:
            if error.code != ErrorCode.INSUFFICIENT_BALANCE:
                raise
            return False
    await Merchant.filter(id=shop.id, status=MerchantStatus.PENDING_DEPOSIT).update(status=MerchantStatus.ACTIVE)
    cache_tags.touch(cache_tags.merchant(shop.id), cache_tags.PRODUCT_LIST)  # its products become visible
    shop.status = MerchantStatus.ACTIVE
    return True


async def pay_deposit(actor: Actor, merchant_id: int) -> Merchant:
    """The owner of a PENDING_DEPOSIT shop pays its deposit from their wallet: it opens."""
    shop = await find_merchant(merchant_id)
    permissions.require(actor, Action.PAY_SHOP_DEPOSIT, owner_id=shop.owner_id)
    async with outbox.atomic():
        shop = await Merchant.filter(id=merchant_id).select_for_update().get()
        if shop.status != MerchantStatus.PENDING_DEPOSIT:
            raise UserFacingError(ErrorCode.INVALID_STATE, "This shop's deposit is held already.")
        if not await _hold_deposit(shop):
            raise UserFacingError(ErrorCode.INSUFFICIENT_BALANCE,
                                  f"Your wallet needs {get_settings().merchant_deposit} for the deposit.")
    return shop


# -- reads ----------------------------------------------------------------------------------


async def my_applications(actor: Actor) -> list[MerchantApplication]:
    user = permissions.require_signed_in(actor)
    return list(await MerchantApplication.filter(applicant_id=user.id).order_by("-id").limit(20))


async def pending_applications(actor: Actor, *, first: int | None, after: str | None) -> Page[MerchantApplication]:
    """ADMINs: the review queue, oldest first."""
    permissions.require(actor, Action.REVIEW_MERCHANT_APPLICATION)
    query = MerchantApplication.filter(status=ApplicationStatus.PENDING)
    return await paginate(query, first=first, after=after, newest_first=False)


def deposit_amount() -> Decimal:
    return get_settings().merchant_deposit
