"""Personal-data rights (issue 12 item 6): export everything Kameng holds about the caller,
and delete the caller's account. Both walk ``privacy_registry.REGISTRY``.

Export is answered inline, as one JSON string in the mutation's payload, rather than as a
download URL: the archive is built on demand under the caller's own signed-in session, so
there is no stored copy of someone's personal data to expire, clean up or leak, and no bearer
token travelling in a URL (proxies, browser history and access logs keep URLs). One user's
rows are small enough for one response.

Sold card keys are exported decrypted: they are what the user paid for. Each decryption is
audited (a CardKeyReveal row, as when the buyer opens the order), through the same door.

Deletion needs the password again, and is refused (INVALID_STATE, nothing changed) while the
wallet or a shop of the user holds money, or an order of theirs (bought or sold) is still in
flight: the ledger is never touched, so it stays balanced, and nobody's money is decided by
a deletion. Otherwise, in one transaction: the account row is claimed (``is_active`` from
true to false, a conditional update: of concurrent calls one does the work, the others find
it done), then every table's rows are deleted, scrubbed or unlinked as the registry says.
Posts and comments are deleted as their author would delete them (text erased, rows kept so
that threads, answers and counters hold). Orders, postings, payments and points stay, named
by the now-empty account's id only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tortoise import Tortoise
from tortoise.expressions import F, Q

from kameng import runtime
from kameng.security import verify_password
from kameng.settings import get_settings
from models.accounts.users import AuthSession, User
from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.ledger import Account
from models.commerce.merchants import Merchant, MerchantStatus
from models.commerce.orders import Order, OrderStatus
from models.commerce.withdrawals import Withdrawal, WithdrawalStatus
from models.community.comments import Comment
from models.community.follows import Follow, FollowKind
from models.community.posts import ContentStatus, Post
from models.community.reactions import CommentLike, PostLike
from models.community.topics import PostTopic, Topic
from models.discovery.events import BehaviourEvent
from models.discovery.search import SearchKind
from models.lifecycle.experiments import ExperimentExposure
from models.loyalty.invitations import Referral
from models.repurchase.plans import PlanRenewal, PlanStatus, ProductPlan, RenewalStatus
from resolvers.accounts import profiling, sessions
from resolvers.accounts.auth import Actor, require
from resolvers.accounts.privacy_registry import REGISTRY, Erasure, Policy
from resolvers.commerce import inventory, ledger
from resolvers.community import comments, posts
from resolvers.discovery import indexing, storage
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import outbox

FORMAT = "kameng-export/1"
#: Orders still moving: money sits in escrow or the buyer still waits for something.
IN_FLIGHT = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED)
OPEN_WITHDRAWALS = (WithdrawalStatus.REQUESTED, WithdrawalStatus.APPROVED)


def models_by_name() -> dict[str, Any]:
    return dict(Tortoise.apps["kameng"])


def _columns(model: Any, policy: Policy) -> list[str]:
    return [c for c in model._meta.fields_db_projection if c not in policy.omit]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value) if not isinstance(value, (str, int, float, bool, list, dict, type(None))) else value


# -- export -------------------------------------------------------------------------------


async def archive_of(user_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every registered table's rows that name ``user_id``, secrets left out: {model: rows}."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, model in sorted(models_by_name().items()):
        policy = REGISTRY[name]
        if not policy.links:
            continue
        pk = model._meta.pk_attr
        rows = await model.filter(policy.where(user_id)).order_by(pk).values(*_columns(model, policy))
        if rows:
            tables[name] = [{k: _plain(v) for k, v in row.items()} for row in rows]
    return tables


async def export_my_data(actor: Actor, *, include_card_keys: bool = True) -> str:
    """The caller's archive as a JSON string (see the module's docstring for why inline)."""
    user = require(actor)
    limit = get_settings().login_limit_per_account
    if not await runtime.limiter().hit(limit, "privacy:export", str(user.id)):
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many exports; wait a minute and try again.")
    keys: list[dict[str, Any]] = []
    if include_card_keys:
        order_ids = await CardKey.filter(order__buyer_id=user.id, status=CardKeyStatus.SOLD).distinct().values_list(
            "order_id", flat=True)
        for order in await Order.filter(id__in=list(order_ids)).order_by("id"):
            for key_id, secret in await inventory.reveal_keys(actor, order):
                keys.append({"orderId": order.id, "orderNo": order.order_no, "cardKeyId": key_id, "secret": secret})
    archive = {
        "format": FORMAT,
        "exportedAt": datetime.now(UTC).isoformat(),
        "userId": user.id,
        "wallet": {"code": ledger.wallet(user.id), "balance": str(await ledger.balance(ledger.wallet(user.id)))},
        "tables": await archive_of(user.id),
        "cardKeys": keys,
        "policies": {name: {"erasure": p.erasure.value, "why": p.why} for name, p in sorted(REGISTRY.items())
                     if p.links},
    }
    return json.dumps(archive, ensure_ascii=False, sort_keys=True)


# -- deletion -----------------------------------------------------------------------------


def _busy(message: str) -> UserFacingError:
    return UserFacingError(ErrorCode.INVALID_STATE, message)


async def _refuse_if_busy(user_id: int) -> None:
    """INVALID_STATE while money or an order of the user is still somewhere to be decided."""
    # On PostgreSQL the wallet row is locked: a concurrent debit waits for this transaction.
    wallet = await Account.filter(code=ledger.wallet(user_id)).select_for_update().first()
    if wallet is not None and wallet.balance != 0:
        raise _busy(f"Your wallet holds {wallet.balance} {wallet.currency}: spend it or ask support to pay it "
                    "out before deleting your account.")
    if await Order.filter(buyer_id=user_id, status__in=IN_FLIGHT).exists() or await Order.filter(
            buyer_id=user_id, awaiting_claim=True).exists():
        raise _busy("An order of yours is still in progress (unpaid, paid, being delivered or not yet confirmed); "
                    "wait until it completes, or cancel it, before deleting your account.")
    shops = list(await Merchant.filter(owner_id=user_id).values_list("id", flat=True))
    if not shops:
        return
    held = await Account.filter(
        code__in=[ledger.merchant_balance(m) for m in shops] + [ledger.merchant_deposit(m) for m in shops]
    ).exclude(balance=0).exists()
    if held or await Withdrawal.filter(merchant_id__in=shops, status__in=OPEN_WITHDRAWALS).exists():
        raise _busy("Your shop still holds money (a balance, a deposit or a payout under way): withdraw it before "
                    "deleting your account.")
    if await Order.filter(merchant_id__in=shops, status__in=IN_FLIGHT).exists():
        raise _busy("Your shop has orders in progress: fulfil or refund them before deleting your account.")


async def delete_my_account(actor: Actor, *, password: str) -> bool:
    """Erase the caller's personal data; True if this call did it, False if it was done already
    (a concurrent or repeated call)."""
    user = require(actor)
    limit = get_settings().login_limit_per_account
    if not await runtime.limiter().hit(limit, "privacy:reauth", str(user.id)):
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many attempts; wait a minute and try again.")
    current = await User.filter(id=user.id).first()
    if current is None or not verify_password(current.password_hash, password):
        if current is not None and not current.is_active:
            return False
        raise UserFacingError(ErrorCode.INVALID_CREDENTIALS, "The password is not right.", "password")
    async with outbox.atomic():
        if not await User.filter(id=user.id, is_active=True).update(is_active=False):
            return False
        await _refuse_if_busy(user.id)
        await _erase(user.id)
    return True


async def _erase(user_id: int) -> None:
    now = datetime.now(UTC)
    await profiling.erasing()  # a batch writing profiles finishes first: its rows are erased below
    await sessions.revoke(AuthSession.filter(user_id=user_id))
    await _drop_devices(user_id)
    await _undo_counters(user_id)
    await _retire_content(user_id)
    plans = ProductPlan.filter(buyer_id=user_id, status__in=(PlanStatus.ACTIVE, PlanStatus.PAUSED))
    plan_ids = list(await plans.values_list("id", flat=True))
    if plan_ids:
        await ProductPlan.filter(id__in=plan_ids).update(status=PlanStatus.CANCELLED, ended_at=now)
        await PlanRenewal.filter(plan_id__in=plan_ids, status=RenewalStatus.PENDING).update(status=RenewalStatus.LAPSED)
    await Merchant.filter(owner_id=user_id).update(status=MerchantStatus.SUSPENDED)
    for name, model in models_by_name().items():
        policy = REGISTRY[name]
        if not policy.links or policy.erasure in (Erasure.NONE, Erasure.KEEP):
            continue
        rows = model.filter(policy.where(user_id, deleting=True))
        if policy.erasure == Erasure.DELETE:
            await rows.delete()
        elif name != "ExperimentExposure":  # handled with the devices (a unit per row)
            await rows.update(**policy.scrubbed(user_id))
    await storage.forget_user(user_id)  # the HOME list's copy in Redis, which serving reads first


async def _drop_devices(user_id: int) -> None:
    """Every event and exposure of the user's devices loses its device (and user)."""
    devices = list(await BehaviourEvent.filter(user_id=user_id, device_id__isnull=False).distinct().values_list(
        "device_id", flat=True))
    if devices:
        await BehaviourEvent.filter(device_id__in=devices).update(user_id=None, device_id=None, personalised=False)
        await Referral.filter(device_id__in=devices).update(device_id="")
    where = REGISTRY["ExperimentExposure"].where(user_id)
    if devices:
        where = where | Q(device_id__in=devices)
    exposures = ExperimentExposure.filter(where)
    for pk in await exposures.values_list("id", flat=True):
        await ExperimentExposure.filter(id=pk).update(user_id=None, device_id=None, unit=f"erased:{pk}")


async def _undo_counters(user_id: int) -> None:
    """Likes and follows go with the account: the counts they fed drop with them."""
    for post_id in await PostLike.filter(user_id=user_id).values_list("post_id", flat=True):
        await Post.filter(id=post_id).update(like_count=F("like_count") - 1)
    for comment_id in await CommentLike.filter(user_id=user_id).values_list("comment_id", flat=True):
        await Comment.filter(id=comment_id).update(like_count=F("like_count") - 1)
    for target in await Follow.filter(follower_id=user_id, kind=FollowKind.USER).values_list("target_id", flat=True):
        await User.filter(id=target).update(follower_count=F("follower_count") - 1)


async def _retire_content(user_id: int) -> None:
    """Posts and comments are deleted through their own doors (product ratings and comment
    counts follow); posts leave the search index and their topics' counts, as their author's
    delete does. The registry's scrub then erases the text."""
    for post in await Post.filter(author_id=user_id).exclude(status=ContentStatus.DELETED):
        await posts.move_post(post, ContentStatus.DELETED)
        await indexing.forget(SearchKind.POST, post.id)
        for topic_id in await PostTopic.filter(post_id=post.id).values_list("topic_id", flat=True):
            await Topic.filter(id=topic_id).update(post_count=F("post_count") - 1)
    for comment in await Comment.filter(author_id=user_id).exclude(status=ContentStatus.DELETED):
        await comments.move_comment(comment, ContentStatus.DELETED)
