"""The post-purchase survey (article 004): ``KAMENG_SURVEY_DELAY_DAYS`` (7) after delivery the
buyer is asked, by an in-app notification, how satisfied they are (0-10, and a comment).

* Asked once per order (a unique survey row; the sweep may run any number of times), for
  orders still DELIVERED or COMPLETED (a refunded order is not asked), delivered in the week
  after the delay (an order delivered long before the survey began is not asked).
* Answered once, by its buyer only. An unhappy answer (``score <= 6``, an NPS detractor) opens
  an after-sales ticket on the order (resolvers/trust/tickets.py, reason OTHER, the comment as
  its first message; an order with a ticket already open keeps that one) and, when
  ``KAMENG_SURVEY_COMPENSATION_COUPON`` names a coupon, grants it once.
* **NPS** over a period: percent of promoters (9-10) minus percent of detractors (0-6) among
  the answers given in it (resolvers/lifecycle/analytics.py reports it, suppressed under 5).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from tortoise.exceptions import IntegrityError

from kameng import clock
from kameng.settings import get_settings
from models.commerce.orders import Order, OrderStatus
from models.lifecycle.surveys import Survey
from models.loyalty.coupons import Coupon
from models.trust.tickets import ACTIVE, Ticket, TicketReason
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import require_signed_in
from resolvers.errors import ErrorCode, UserFacingError, invalid
from resolvers.loyalty import coupons
from resolvers.trust import tickets
from subscriptions import outbox

UNHAPPY_MAX = 6
PROMOTER_MIN = 9
COMMENT_MAX = 1000
#: Orders delivered up to this many days before the due day are still asked (a missed sweep).
ASK_WINDOW_DAYS = 7
NOTIFICATION_KIND = "SURVEY"


async def ask_due(limit: int = 1000) -> int:
    """The sweep: ask the surveys that are due; how many were asked."""
    now = clock.now()
    due_before = now - timedelta(days=get_settings().survey_delay_days)
    orders = await Order.filter(
        status__in=(OrderStatus.DELIVERED, OrderStatus.COMPLETED), buyer_id__isnull=False,
        delivered_at__lte=due_before, delivered_at__gt=due_before - timedelta(days=ASK_WINDOW_DAYS),
    ).order_by("delivered_at").limit(limit).values("id", "buyer_id", "order_no")
    asked = set(await Survey.filter(order_id__in=[o["id"] for o in orders]).values_list("order_id", flat=True))
    count = 0
    for order in orders:
        if order["id"] in asked:
            continue
        try:
            async with outbox.atomic():
                survey = await Survey.create(order_id=order["id"], user_id=order["buyer_id"], asked_at=now)
                await notifications.notify(
                    int(order["buyer_id"]), NOTIFICATION_KIND, f"How was order {order['order_no']}?",
                    "Tell us how satisfied you are, from 0 to 10: it takes ten seconds.",
                    {"survey": survey.id, "order": order["id"]}, dedupe_key=f"survey:{order['id']}")
            count += 1
        except IntegrityError:  # asked by a concurrent sweep
            continue
    return count


async def pending(actor: Actor, limit: int = 50) -> list[Survey]:
    """The viewer's unanswered surveys, newest first."""
    user = require_signed_in(actor)
    return list(await Survey.filter(user_id=user.id, answered_at__isnull=True).order_by("-id").limit(limit))


async def answer(actor: Actor, survey_id: int, score: int, comment: str = "") -> Survey:
    """The buyer answers their survey, once."""
    user = require_signed_in(actor)
    if not 0 <= score <= 10:
        raise invalid("score", "Give a score from 0 to 10.")
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX:
        raise invalid("comment", f"At most {COMMENT_MAX} characters.")
    survey = await Survey.filter(id=survey_id, user_id=user.id).first()
    if survey is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such survey.", "surveyId")
    now = clock.now()
    async with outbox.atomic():
        if await Survey.filter(id=survey.id, answered_at__isnull=True).update(
                score=score, comment=comment, answered_at=now) != 1:
            raise UserFacingError(ErrorCode.DUPLICATE, "You answered this survey already.", "surveyId")
        if score <= UNHAPPY_MAX:
            code = get_settings().survey_compensation_coupon
            coupon = await Coupon.filter(code=coupons.normalise_code(code)).first() if code else None
            held = await coupons.issue_one(coupon.id, user.id, f"survey:{survey.id}") if coupon else None
            if held is not None:
                await Survey.filter(id=survey.id).update(user_coupon_id=held.id)
    if score <= UNHAPPY_MAX:
        await _follow_up(actor, survey, score, comment)
    return await Survey.get(id=survey.id)


async def _follow_up(actor: Actor, survey: Survey, score: int, comment: str) -> None:
    """The after-sales follow-up of an unhappy answer: a ticket on the order (or the open one)."""
    message = comment or f"Post-purchase survey: satisfaction {score}/10."
    try:
        ticket = await tickets.open_ticket(actor, survey.order_id, TicketReason.OTHER, message)
    except UserFacingError:
        ticket = await Ticket.filter(order_id=survey.order_id, status__in=list(ACTIVE)).first()
    if ticket is not None:
        await Survey.filter(id=survey.id).update(ticket_id=ticket.id)


async def nps(begin: datetime, end: datetime) -> tuple[float, int]:
    """(NPS, answers) over the answers given in [begin, end)."""
    scores = await Survey.filter(answered_at__gte=begin, answered_at__lt=end, score__isnull=False).values_list(
        "score", flat=True)
    if not scores:
        return 0.0, 0
    promoters = sum(1 for s in scores if s >= PROMOTER_MIN)
    detractors = sum(1 for s in scores if s <= UNHAPPY_MAX)
    return 100.0 * (promoters - detractors) / len(scores), len(scores)
