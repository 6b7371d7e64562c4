"""Creators: an order placed from a post (``fromPostId``) credits the post's author when the
order COMPLETES, and only then:

* points (rule ``creator``, ``KAMENG_POINTS_CREATOR_ORDER``), keyed by the order;
* a commission in money: ``KAMENG_CREATOR_FEE_SHARE`` of the platform fee the order paid,
  rounded half-up to the fen, posted ``platform:fees -> wallet:<author>`` as
  ``creator.commission`` keyed by the order (the platform shares its own fee: the merchant's
  proceeds and the buyer's price are untouched).

Both are keyed by the order, so a replayed event credits once. A refunded order never
completes (REFUNDED and COMPLETED are both final), so it credits nothing; should refunds after
completion ever exist, ``reverse`` takes both back (``creator_reversal`` points, clamped to
the author's balance, and ``creator.commission_reversal`` in the ledger). An author buying
from their own post earns nothing. The weekly ranking of creators is leaderboard.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from tortoise.functions import Count, Sum

from kameng.settings import get_settings
from models.commerce.ledger import Entry, Posting
from models.commerce.orders import Order, OrderStatus
from models.community.posts import ContentStatus, Post
from resolvers.accounts.auth import Actor, require
from resolvers.commerce import escrow, ledger
from resolvers.errors import ErrorCode, UserFacingError
from resolvers.loyalty import points


async def visible_post(post_id: int) -> Post:
    """The post an order is placed from: it exists and is visible, or NOT_FOUND."""
    post = await Post.filter(id=post_id, status=ContentStatus.VISIBLE).first()
    if post is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such post.", "fromPostId")
    return post


def commission(order: Order) -> Decimal:
    share = get_settings().creator_fee_share
    return (escrow.fee(order) * share).quantize(ledger.CENT, rounding=ROUND_HALF_UP)


async def author_of(order: Order) -> int | None:
    if order.from_post_id is None:
        return None
    author = await Post.filter(id=order.from_post_id).values_list("author_id", flat=True)
    if not author or author[0] == order.buyer_id:
        return None
    return author[0]


async def credit(order: Order) -> bool:
    """Inside a transaction, for a COMPLETED order: credit the author once."""
    author = await author_of(order)
    if author is None or order.status != OrderStatus.COMPLETED:
        return False
    reference = points.order_reference(order.id)
    if await points.posted(author, "creator_reversal", reference) is not None:
        return False  # reversed already: never credit later
    await points.post(author, "creator", reference, points.amount_of("creator"), f"order {order.order_no} from your post")
    amount = commission(order)
    if amount > 0:
        await ledger.post(
            "creator.commission", str(order.id), [(ledger.PLATFORM_FEES, -amount), (ledger.wallet(author), amount)],
            memo=f"creator commission of order {order.order_no} (post {order.from_post_id})",
        )
    return True


async def reverse(order: Order) -> None:
    """Inside a transaction: undo ``credit`` for a refunded order (and block it for later)."""
    author = await author_of(order)
    if author is None:
        return
    reference = points.order_reference(order.id)
    given = await points.posted(author, "creator", reference)
    await points.post(author, "creator_reversal", reference, -(given.amount if given else 0), "order refunded", clamp=True)
    paid = await Posting.filter(reason="creator.commission", reference=str(order.id)).prefetch_related("entries").first()
    if paid is not None:
        amount = sum((Decimal(e.amount) for e in paid.entries if e.amount > 0), Decimal("0"))
        # From the author's wallet if it still holds it; what was spent stays the platform's loss.
        available = min(amount, await ledger.balance(ledger.wallet(author)))
        if available > 0:
            await ledger.post(
                "creator.commission_reversal", str(order.id),
                [(ledger.wallet(author), -available), (ledger.PLATFORM_FEES, available)],
                memo=f"creator commission of refunded order {order.order_no}",
            )


@dataclass(frozen=True)
class CreatorStats:
    attributed_orders: int
    gmv: Decimal
    commission: Decimal


async def stats(actor: Actor, author_id: int) -> CreatorStats:
    require(actor, owner_id=author_id)
    post_ids = list(await Post.filter(author_id=author_id).values_list("id", flat=True))
    if not post_ids:
        return CreatorStats(0, Decimal("0.00"), Decimal("0.00"))
    rows = await Order.filter(status=OrderStatus.COMPLETED, from_post_id__in=post_ids).exclude(
        buyer_id=author_id
    ).annotate(n=Count("id"), gmv=Sum("total")).values("n", "gmv")
    n = int(rows[0]["n"] or 0) if rows else 0
    gmv = Decimal(rows[0]["gmv"] or 0).quantize(ledger.CENT) if rows else Decimal("0.00")
    earned = await _commission_of(author_id)
    return CreatorStats(n, gmv, earned)


async def _commission_of(author_id: int) -> Decimal:
    rows = await Entry.filter(
        account__code=ledger.wallet(author_id), posting__reason__in=["creator.commission", "creator.commission_reversal"]
    ).values_list("amount", flat=True)
    return sum((Decimal(a) for a in rows), Decimal("0.00")).quantize(ledger.CENT)
