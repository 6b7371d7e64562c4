"""Retention analytics (issue 12 item 5): every metric of `retentionAnalytics` against a small
hand-built history whose answers are worked out below, suppression under 5 users, and who may
ask. Each test dates its data in a year of its own (long past) so that nothing else in the
session's database falls into its period."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from models.accounts.notifications import Notification
from models.accounts.users import Role, User
from models.commerce.catalog import Product
from models.commerce.merchants import Category
from models.commerce.orders import Order, OrderStatus
from models.discovery.events import BehaviourEvent, EventKind
from tests.conftest import Client
from tests.factories import make_merchant, make_product, make_user, make_users, token_for

QUERY = """query($input: RetentionAnalyticsInput) { retentionAnalytics(input: $input) {
  errors { code field }
  analytics {
    since until minGroup notes nps { value users suppressed }
    buyers { value users suppressed }
    repurchaseRate { value users suppressed }
    singlePurchaseShare { value users suppressed }
    meanDaysBetweenPurchases { value users suppressed }
    crossCategoryRate { value users suppressed }
    unpromptedReturnShare { value users suppressed }
    visitsPerUserPerMonth { value users suppressed }
    monthlyVisits { month visitsPerUser { value users suppressed } }
    cohorts { month size suppressed retention ltv }
    retentionCurve { value users suppressed }
    ltvCurve { value users suppressed }
  } } }"""


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


async def products() -> tuple[Product, Product]:
    """Two products in two categories: A at 10.00, B at 20.00."""
    shop = await make_merchant()
    a, b = await make_product(shop, price="10.00"), await make_product(shop, price="20.00")
    for product, name in ((a, "A"), (b, "B")):
        tag = uuid.uuid4().hex[:10]
        category = await Category.create(name=f"{name} {tag}", slug=f"cat-{tag}")
        await Product.filter(id=product.id).update(category_id=category.id)
    return a, b


async def purchase(buyer: User, product: Product, when: datetime, status: OrderStatus = OrderStatus.COMPLETED) -> None:
    key = uuid.uuid4().hex
    await Order.create(
        order_no=f"T{key[:20]}", buyer=buyer, product=product, merchant_id=product.merchant_id, quantity=1,  # type: ignore[attr-defined]
        unit_price=product.price, total=product.price, status=status, idempotency_scope=f"u:{buyer.id}",
        idempotency_key=key, expires_at=when, paid_at=when,
    )


async def visit(user: User, when: datetime, kind: EventKind = EventKind.PAGE_VISIT) -> None:
    await BehaviourEvent.create(event_id=uuid.uuid4().hex, kind=kind, user_id=user.id, occurred_at=when)


async def notify(user: User, when: datetime) -> None:
    note = await Notification.create(user=user, kind="CAMPAIGN", title="Come back")
    await Notification.filter(id=note.id).update(created_at=when)


async def admin_client(make_client: Any, role: Role = Role.ADMIN) -> Client:
    client: Client = make_client()
    client.token = await token_for(await make_user(role, role.value.title()))
    return client


async def ask(client: Client, since: str, until: str) -> dict[str, Any]:
    payload = (await client.gql(QUERY, {"input": {"since": since, "until": until}}))["retentionAnalytics"]
    assert payload["errors"] == [], payload
    return payload["analytics"]


async def test_every_metric_on_a_hand_built_history(make_client) -> None:  # type: ignore[no-untyped-def]
    """Eight buyers over January to March 2019 (A = 10.00, B = 20.00, all at noon UTC):

    u1 Jan 5 A, Feb 4 A, Mar 6 B    gaps 30 + 30, two categories
    u2 Jan 10 A, Jan 20 B           gap 10, two categories
    u3 Jan 15 A (+ a refunded Feb 15 order, which is no purchase)
    u4 Feb 1 B, Mar 1 B             gap 28
    u5 Feb 10 A
    u6 Mar 3 A
    u7 Jan 2 B, Mar 2 B             gap 59
    u8 Jan 25 A, Jan 26 A           gap 1
    """
    y = 2019
    a, b = await products()
    u1, u2, u3, u4, u5, u6, u7, u8 = await make_users(8)
    for buyer, product, when in [
        (u1, a, at(y, 1, 5)), (u1, a, at(y, 2, 4)), (u1, b, at(y, 3, 6)),
        (u2, a, at(y, 1, 10)), (u2, b, at(y, 1, 20)),
        (u3, a, at(y, 1, 15)),
        (u4, b, at(y, 2, 1)), (u4, b, at(y, 3, 1)),
        (u5, a, at(y, 2, 10)), (u6, a, at(y, 3, 3)),
        (u7, b, at(y, 1, 2)), (u7, b, at(y, 3, 2)),
        (u8, a, at(y, 1, 25)), (u8, a, at(y, 1, 26)),
    ]:
        await purchase(buyer, product, when)
    await purchase(u3, a, at(y, 2, 15), OrderStatus.REFUNDED)
    await purchase(u5, b, at(y, 2, 20), OrderStatus.FAILED)
    # Visits (user-days): January u1 x2 (Jan 5 twice, and a search, + Jan 6), u2, u3, u4, u5 -> 6 visits by 5
    # users; February u1, u6 -> 2 by 2 (suppressed). An impression is no visit.
    await visit(u1, at(y, 1, 5, 9)), await visit(u1, at(y, 1, 5, 15)), await visit(u1, at(y, 1, 5, 16), EventKind.SEARCH)
    await visit(u1, at(y, 1, 6)), await visit(u2, at(y, 1, 10)), await visit(u3, at(y, 1, 15))
    await visit(u4, at(y, 1, 7)), await visit(u5, at(y, 1, 8)), await visit(u1, at(y, 2, 4)), await visit(u6, at(y, 2, 11))
    await visit(u6, at(y, 3, 12), EventKind.RECOMMENDATION_IMPRESSION)
    # Prompts: u2 and u4 were notified less than 24 h before their only visit; u3 48 h before (too
    # early), u5 an hour after (too late). User-months: January u1 u2 u3 u4 u5, February u1 u6;
    # unprompted: January u1 u3 u5, February u1 u6 -> 5 of 7, over 6 visitors.
    await notify(u2, at(y, 1, 9, 18)), await notify(u4, at(y, 1, 7, 11))
    await notify(u3, at(y, 1, 13, 12)), await notify(u5, at(y, 1, 8, 13))

    r = await ask(await admin_client(make_client), f"{y}-01-01", f"{y}-04-01")
    assert (r["since"], r["until"], r["minGroup"]) == (f"{y}-01-01", f"{y}-04-01", 5)
    assert r["buyers"] == {"value": 8, "users": 8, "suppressed": False}
    assert r["repurchaseRate"] == {"value": 5 / 8, "users": 8, "suppressed": False}
    assert r["singlePurchaseShare"] == {"value": 3 / 8, "users": 8, "suppressed": False}
    assert r["crossCategoryRate"] == {"value": 2 / 8, "users": 8, "suppressed": False}
    gap = r["meanDaysBetweenPurchases"]
    assert gap["users"] == 5 and gap["value"] == pytest.approx((30 + 30 + 10 + 28 + 59 + 1) / 6)
    assert r["unpromptedReturnShare"] == {"value": pytest.approx(5 / 7), "users": 6, "suppressed": False}
    assert r["visitsPerUserPerMonth"] == {"value": pytest.approx(8 / 7), "users": 6, "suppressed": False}
    assert r["monthlyVisits"] == [
        {"month": f"{y}-01", "visitsPerUser": {"value": 6 / 5, "users": 5, "suppressed": False}},
        {"month": f"{y}-02", "visitsPerUser": {"value": None, "users": None, "suppressed": True}},
    ]
    # Cohorts: January u1 u2 u3 u7 u8 (5); February u4 u5 (2, suppressed); March u6 (1, suppressed).
    # January: Feb buyers u1 -> 0.2, Mar u1 u7 -> 0.4; revenue 90, +10, +40 -> 18, 20, 28 per buyer.
    assert r["cohorts"] == [
        {"month": f"{y}-01", "size": 5, "suppressed": False, "retention": [1.0, 0.2, 0.4],
         "ltv": ["18.00", "20.00", "28.00"]},
        {"month": f"{y}-02", "size": None, "suppressed": True, "retention": [None, None], "ltv": [None, None]},
        {"month": f"{y}-03", "size": None, "suppressed": True, "retention": [None], "ltv": [None]},
    ]
    # Pooled: age 0 over 8 buyers; age 1 over Jan + Feb (7): u1 and u4 -> 2/7; age 2 over Jan (5): 2/5.
    assert [(m["value"], m["users"]) for m in r["retentionCurve"]] == [(1.0, 8), (pytest.approx(2 / 7), 7), (0.4, 5)]
    # LTV: age 0 (90 + 30 + 10) / 8; age 1 (100 + 50) / 7; age 2 140 / 5.
    assert [(m["value"], m["users"]) for m in r["ltvCurve"]] == [
        (pytest.approx(130 / 8), 8), (pytest.approx(150 / 7), 7), (pytest.approx(28.0), 5)]
    # No survey answered in that period: NPS is there, suppressed (the survey tests fill it).
    assert r["nps"] == {"value": None, "users": None, "suppressed": True}

    # A narrower period: February only. Buyers u1 u4 u5 (3): every buyer metric is suppressed.
    feb = await ask(await admin_client(make_client), f"{y}-02-01", f"{y}-03-01")
    for name in ("buyers", "repurchaseRate", "singlePurchaseShare", "meanDaysBetweenPurchases", "crossCategoryRate",
                 "unpromptedReturnShare", "visitsPerUserPerMonth"):
        assert feb[name] == {"value": None, "users": None, "suppressed": True}, name
    assert feb["cohorts"] == [{"month": f"{y}-02", "size": None, "suppressed": True, "retention": [None],
                               "ltv": [None]}]
    assert [m["suppressed"] for m in feb["retentionCurve"] + feb["ltvCurve"]] == [True, True]


async def test_fewer_than_five_users_are_suppressed_everywhere(make_client) -> None:  # type: ignore[no-untyped-def]
    y = 2017
    a, b = await products()
    buyers = await make_users(4)
    for buyer in buyers:  # four repeat, cross-category buyers who all visit: still too few
        await purchase(buyer, a, at(y, 5, 1)), await purchase(buyer, b, at(y, 6, 1))
        await visit(buyer, at(y, 5, 2))
    r = await ask(await admin_client(make_client), f"{y}-05-01", f"{y}-07-01")
    measures = [r[name] for name in ("buyers", "repurchaseRate", "singlePurchaseShare", "meanDaysBetweenPurchases",
                                     "crossCategoryRate", "unpromptedReturnShare", "visitsPerUserPerMonth")]
    measures += [m["visitsPerUser"] for m in r["monthlyVisits"]] + r["retentionCurve"] + r["ltvCurve"]
    assert len(measures) == 7 + 1 + 2 + 2
    assert all(m == {"value": None, "users": None, "suppressed": True} for m in measures), measures
    assert r["cohorts"] == [{"month": f"{y}-05", "size": None, "suppressed": True, "retention": [None, None],
                             "ltv": [None, None]}]
    # A fifth buyer lifts the buyer metrics over the threshold.
    await purchase((await make_users(1))[0], a, at(y, 5, 20))
    r = await ask(await admin_client(make_client), f"{y}-05-01", f"{y}-07-01")
    assert r["repurchaseRate"] == {"value": 4 / 5, "users": 5, "suppressed": False}
    assert r["cohorts"][0]["retention"] == [1.0, 0.8] and r["cohorts"][0]["ltv"] == ["10.00", "26.00"]


@pytest.mark.parametrize("role", [None, Role.BUYER, Role.MERCHANT, Role.MODERATOR])
async def test_only_admins_may_read_analytics(role: Role | None, make_client) -> None:  # type: ignore[no-untyped-def]
    client: Client = make_client()
    if role is not None:
        client.token = await token_for(await make_user(role))
    payload = (await client.gql(QUERY, {"input": {"since": "2019-01-01", "until": "2019-04-01"}}))["retentionAnalytics"]
    assert payload["analytics"] is None
    assert [e["code"] for e in payload["errors"]] == ["UNAUTHENTICATED" if role is None else "FORBIDDEN"]


async def test_a_bad_period_is_refused(make_client) -> None:  # type: ignore[no-untyped-def]
    admin = await admin_client(make_client)
    for variables, field in [({"since": "2019-03-01", "until": "2019-03-01"}, "since"),
                             ({"since": "2000-01-01", "until": "2019-03-01"}, "until")]:
        payload = (await admin.gql(QUERY, {"input": variables}))["retentionAnalytics"]
        assert payload["analytics"] is None and [(e["code"], e["field"]) for e in payload["errors"]] == [
            ("INVALID_INPUT", field)]
    # No input: the last 12 months, answered.
    default = (await admin.gql(QUERY))["retentionAnalytics"]
    assert default["errors"] == [] and default["analytics"]["minGroup"] == 5

