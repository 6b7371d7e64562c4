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
from their own post earns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from tortoise.functions import Count, Sum

from kameng import clock
from kameng.settings import get_settings
from models.community.posts import ContentStatus, Post
from models.commerce.orders import Order, OrderStatus
from resolvers.commerce import escrow, ledger
from resolvers.loyalty import points
from resolvers.accounts.auth import Actor, require
from resolvers.errors import ErrorCode, UserFacingError

LEADERBOARD_MAX = 100


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
    from models.commerce.ledger import Posting

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
    from models.commerce.ledger import Entry

    rows = await Entry.filter(
        account__code=ledger.wallet(author_id), posting__reason__in=["creator.commission", "creator.commission_reversal"]
    ).values_list("amount", flat=True)
    return sum((Decimal(a) for a in rows), Decimal("0.00")).quantize(ledger.CENT)


@dataclass(frozen=True)
class CreatorRank:
    rank: int
    author_id: int
    attributed_orders: int
    gmv: Decimal


async def leaderboard(first: int = 10, at: datetime | None = None) -> list[CreatorRank]:
    """This week's creators (Monday 00:00 in the loyalty timezone), by GMV of the completed
    orders placed from their posts, then by order count, then by who got there first (id)."""
    if not 1 <= first <= LEADERBOARD_MAX:
        from resolvers.errors import invalid

        raise invalid("first", f"first must be between 1 and {LEADERBOARD_MAX}.")
    since = clock.week_start(at or clock.now(), get_settings().loyalty_timezone)
    per_post = await Order.filter(
        status=OrderStatus.COMPLETED, from_post_id__isnull=False, completed_at__gte=since
    ).group_by("from_post_id", "buyer_id").annotate(n=Count("id"), gmv=Sum("total")).values(
        "from_post_id", "buyer_id", "n", "gmv"
    )
    if not per_post:
        return []
    authors = dict(
        await Post.filter(id__in=[row["from_post_id"] for row in per_post]).values_list("id", "author_id")
    )
    totals: dict[int, list[Decimal | int]] = {}
    for row in per_post:
        author = authors.get(row["from_post_id"])
        if author is None or author == row["buyer_id"]:
            continue  # an author buying from their own post is not credited
        entry = totals.setdefault(author, [0, Decimal("0")])
        entry[0] = int(entry[0]) + int(row["n"])
        entry[1] = Decimal(entry[1]) + Decimal(row["gmv"] or 0)
    ordered = sorted(totals.items(), key=lambda item: (-Decimal(item[1][1]), -int(item[1][0]), item[0]))[:first]
    return [
        CreatorRank(i + 1, author, int(n), Decimal(gmv).quantize(ledger.CENT))
        for i, (author, (n, gmv)) in enumerate(ordered)
    ]
