"""The post-purchase survey (issue 12 item 3, article 004): asked once, by a notification,
7 days after delivery; answered once by its buyer; an unhappy answer opens an after-sales ticket
and grants the compensation coupon; NPS from the answers in the retention analytics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kameng.settings import configure, get_settings
from models.accounts.notifications import Notification
from models.accounts.users import Role
from models.lifecycle.surveys import Survey
from models.loyalty.coupons import CouponKind, UserCoupon
from models.trust.tickets import Ticket, TicketReason
from resolvers.lifecycle import analytics, surveys
from resolvers.loyalty import coupons
from tests.conftest import Client
from tests.factories import make_user, make_users, token_for
from tests.test_tickets import delivered_order

PENDING = "{ myPendingSurveys { id orderId score } }"
ANSWER = """mutation($input: AnswerSurveyInput!) { result: answerSurvey(input: $input) {
  errors { code field } survey { id score comment answeredAt ticketId compensated } } }"""


@pytest.fixture
def compensation(stack: Any) -> Iterator[str]:
    """A compensation coupon configured for unhappy answers, for this test."""
    code = f"SORRY{uuid.uuid4().hex[:8].upper()}"
    before = get_settings()
    configure(before.model_copy(update={"survey_compensation_coupon": code}))
    yield code
    configure(before)


async def client_of(make_client: Any, user: Any) -> Client:
    client: Client = make_client()
    client.token = await token_for(user)
    return client


async def test_survey_asked_once_answered_once_unhappy_opens_a_ticket_and_compensates(
        make_client, compensation: str) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    await coupons.insert(coupons.NewCoupon(code=compensation, title="Sorry", kind=CouponKind.FIXED,
                                           value=Decimal("5.00"), valid_from=now, valid_until=now + timedelta(days=30)))
    unhappy, happy = await make_users(2)
    due = await delivered_order(unhappy, days_ago=7.5)
    happy_order = await delivered_order(happy, days_ago=8)
    early = await delivered_order(happy, days_ago=3)  # not due yet
    assert await surveys.ask_due() >= 2
    await surveys.ask_due()  # a second sweep asks nobody again
    assert await Survey.filter(order_id=due.id).count() == 1
    assert not await Survey.filter(order_id=early.id).exists()
    note = await Notification.get(user_id=unhappy.id, kind=surveys.NOTIFICATION_KIND)
    survey = await Survey.get(order_id=due.id)
    assert note.data == {"survey": survey.id, "order": due.id}

    api = await client_of(make_client, unhappy)
    pending = (await api.gql(PENDING))["myPendingSurveys"]
    assert len(pending) == 1 and pending[0]["score"] is None
    sid = pending[0]["id"]
    # Someone else cannot answer it; a score outside 0-10 changes nothing.
    stranger = await client_of(make_client, await make_user())
    refused = (await stranger.gql(ANSWER, {"input": {"surveyId": sid, "score": 10}}))["result"]
    assert refused["errors"] == [{"code": "NOT_FOUND", "field": "surveyId"}]
    wrong = (await api.gql(ANSWER, {"input": {"surveyId": sid, "score": 11}}))["result"]
    assert wrong["errors"] == [{"code": "INVALID_INPUT", "field": "score"}]

    answered = (await api.gql(ANSWER, {"input": {"surveyId": sid, "score": 3, "comment": "The key came late."}}))["result"]
    assert answered["errors"] == [] and answered["survey"]["score"] == 3 and answered["survey"]["compensated"] is True
    ticket = await Ticket.get(order_id=due.id)
    assert ticket.buyer_id == unhappy.id and ticket.reason == TicketReason.OTHER
    assert answered["survey"]["ticketId"] is not None
    held = await UserCoupon.filter(user_id=unhappy.id, source=f"survey:{survey.id}").count()
    assert held == 1
    again = (await api.gql(ANSWER, {"input": {"surveyId": sid, "score": 0}}))["result"]
    assert again["errors"] == [{"code": "DUPLICATE", "field": "surveyId"}]
    assert await UserCoupon.filter(user_id=unhappy.id, source=f"survey:{survey.id}").count() == 1
    assert await Ticket.filter(order_id=due.id).count() == 1
    assert (await api.gql(PENDING))["myPendingSurveys"] == []

    # A happy answer opens nothing and grants nothing.
    fan = await client_of(make_client, happy)
    happy_sid = [p["id"] for p in (await fan.gql(PENDING))["myPendingSurveys"]][0]
    done = (await fan.gql(ANSWER, {"input": {"surveyId": happy_sid, "score": 10}}))["result"]
    assert done["errors"] == [] and done["survey"]["ticketId"] is None and done["survey"]["compensated"] is False
    assert not await Ticket.filter(order_id=happy_order.id).exists()


async def test_nps_in_the_retention_analytics(make_client) -> None:  # type: ignore[no-untyped-def]
    start = datetime.now(UTC)
    buyers = await make_users(5)
    for buyer, score in zip(buyers, (10, 9, 8, 6, 0), strict=True):
        order = await delivered_order(buyer, days_ago=7.2)
        survey = await Survey.create(order_id=order.id, user_id=buyer.id, asked_at=datetime.now(UTC))
        api = await client_of(make_client, buyer)
        from strawberry.relay import GlobalID
        done = (await api.gql(ANSWER, {"input": {"surveyId": str(GlobalID("Survey", str(survey.id))), "score": score}}))
        assert done["result"]["errors"] == []
    value, answers = await surveys.nps(start, datetime.now(UTC) + timedelta(seconds=1))
    assert (value, answers) == (0.0, 5)  # 2 promoters, 2 detractors of 5
    r = await analytics.compute()
    assert r.nps.suppressed is False and r.nps.users is not None and r.nps.users >= 5
    admin = await client_of(make_client, await make_user(Role.ADMIN, "Admin"))
    seen = (await admin.gql("{ retentionAnalytics { analytics { nps { value users suppressed } } } }"))
    assert seen["retentionAnalytics"]["analytics"]["nps"]["suppressed"] is False
