"""The pricing engine: its rounding rule, its invariants over every combination of wholesale
tier, member tier, coupon and points (hypothesis), and that priceQuote and createOrder agree,
through the resolvers for generated combinations and through GraphQL for a sample."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.accounts.users import Tier, User
from models.loyalty.coupons import CouponKind
from models.commerce.orders import Order
from resolvers.commerce import orders, pricing
from resolvers.accounts.auth import Actor
from resolvers.errors import ErrorCode, UserFacingError
from tests.factories import make_product, make_user
from tests.test_coupons import hold, make_coupon
from tests.test_points import as_client, give_points, gid

CENT = Decimal("0.01")
QUOTE = """query($input: PriceQuoteInput!) { priceQuote(input: $input) { errors { code field }
  quote { total { amount } subtotal { amount } tierDiscount { amount } couponDiscount { amount }
  pointsDiscount { amount } maxPointsUsable lines { kind amount { amount } } } } }"""
CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code field }
  order { total { amount } unitPrice { amount } tierDiscount { amount } couponDiscount { amount } pointsUsed } } }"""

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

cents = st.integers(min_value=1, max_value=500_000).map(lambda c: Decimal(c) / 100)


@st.composite
def wholesale(draw: st.DrawFn, list_price: Decimal) -> list[tuple[int, Decimal]]:
    count = draw(st.integers(0, 3))
    quantities = sorted(draw(st.sets(st.integers(2, 50), min_size=count, max_size=count)))
    tiers, price = [], list_price
    for q in quantities:
        if price <= CENT:
            break
        price = draw(st.integers(1, int(price * 100) - 1).map(lambda c: Decimal(c) / 100))
        tiers.append((q, price))
    return tiers


@st.composite
def coupons(draw: st.DrawFn) -> pricing.CouponTerms | None:
    kind = draw(st.sampled_from([None, CouponKind.FIXED, CouponKind.PERCENT, CouponKind.THRESHOLD]))
    if kind is None:
        return None
    if kind == CouponKind.PERCENT:
        value = Decimal(draw(st.integers(1, 99)))
        min_spend = Decimal("0")
    else:
        value = draw(cents)
        min_spend = draw(cents) if kind == CouponKind.THRESHOLD else Decimal("0")
    return pricing.CouponTerms("C", "coupon", kind, value, min_spend)


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_engine_invariants(stack, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    list_price = data.draw(cents, "list_price")
    tiers_ = data.draw(wholesale(list_price), "wholesale")
    quantity = data.draw(st.integers(1, 60), "quantity")
    tier = data.draw(st.sampled_from(list(Tier)), "tier")
    coupon = data.draw(coupons(), "coupon")
    try:
        bare = pricing.compute(list_price, tiers_, quantity, tier, coupon, 0)
    except UserFacingError as error:
        assert error.code == ErrorCode.COUPON_INVALID and coupon is not None and coupon.min_spend > 0
        return
    points_to_use = data.draw(st.integers(0, bare.max_points), "points")
    q = pricing.compute(list_price, tiers_, quantity, tier, coupon, points_to_use)
    # Every amount in fen, every discount non-negative, the total at least one fen.
    for amount in (q.subtotal, q.tier_discount, q.coupon_discount, q.points_discount, q.total):
        assert amount == amount.quantize(CENT) and amount >= 0
    assert q.total >= CENT
    # The lines add up to the total, exactly.
    assert sum((line.amount for line in q.lines[:-1]), Decimal("0")) == q.total == q.lines[-1].amount
    assert q.subtotal - q.tier_discount - q.coupon_discount - q.points_discount == q.total
    # The steps, as the module docstring writes them down.
    assert q.unit_price == pricing.wholesale_price(list_price, tiers_, quantity)
    rate = pricing.tiers.BENEFITS[tier].price_rate
    assert q.tier_discount == (q.subtotal * (1 - rate)).quantize(CENT, rounding="ROUND_HALF_UP")
    assert q.points_discount == (Decimal(points_to_use) / 100).quantize(CENT, rounding="ROUND_FLOOR")
    after_coupon = q.subtotal - q.tier_discount - q.coupon_discount
    assert Decimal(q.max_points) <= after_coupon * pricing.points_share(tier) * 100 < q.max_points + 1
    with pytest.raises(UserFacingError) as too_many:
        pricing.compute(list_price, tiers_, quantity, tier, coupon, q.max_points + 1)
    assert too_many.value.code == ErrorCode.INVALID_INPUT


@pytest.mark.parametrize(
    ("price", "quantity", "tier", "coupon", "points", "expected"),
    [
        # GOLD pays 95%: 3 x 3.33 = 9.99, 5% = 0.4995 -> 0.50 (half-up), total 9.49.
        ("3.33", 3, Tier.GOLD, None, 0, {"tier_discount": "0.50", "total": "9.49"}),
        # SILVER 98% of 0.25 = 0.005 off -> 0.01 (half-up).
        ("0.25", 1, Tier.SILVER, None, 0, {"tier_discount": "0.01", "total": "0.24"}),
        # PERCENT 15% of 9.99 = 1.4985 -> 1.50.
        ("9.99", 1, Tier.NORMAL, ("PERCENT", "15", "0"), 0, {"coupon_discount": "1.50", "total": "8.49"}),
        # A FIXED coupon larger than the order leaves one fen to pay.
        ("5.00", 1, Tier.NORMAL, ("FIXED", "8.00", "0"), 0, {"coupon_discount": "4.99", "total": "0.01"}),
        # Points: at most 20% of 10.00 = 200 points; 199 points = 1.99.
        ("10.00", 1, Tier.NORMAL, None, 199, {"points_discount": "1.99", "total": "8.01", "max_points": 200}),
        # GOLD may pay 30% with points: 9.50 x 0.30 x 100 = 285 points.
        ("10.00", 1, Tier.GOLD, None, 285, {"points_discount": "2.85", "total": "6.65", "max_points": 285}),
        # 满减: 100.00 off-threshold 20.00 at 100.00 after the member discount.
        ("50.00", 2, Tier.NORMAL, ("THRESHOLD", "20.00", "100.00"), 0, {"coupon_discount": "20.00", "total": "80.00"}),
    ],
)
def test_rounding_rule(stack, price, quantity, tier, coupon, points, expected) -> None:  # type: ignore[no-untyped-def]
    terms = pricing.CouponTerms("C", "c", CouponKind(coupon[0]), Decimal(coupon[1]), Decimal(coupon[2])) if coupon else None
    q = pricing.compute(Decimal(price), [], quantity, tier, terms, points)
    for name, value in expected.items():
        assert getattr(q, name) == (value if isinstance(value, int) else Decimal(value)), (name, q)


def test_threshold_below_its_minimum_is_refused(stack) -> None:  # type: ignore[no-untyped-def]
    # GOLD: 100.00 becomes 95.00, below the 100.00 threshold.
    terms = pricing.CouponTerms("C", "c", CouponKind.THRESHOLD, Decimal("20.00"), Decimal("100.00"))
    with pytest.raises(UserFacingError) as refused:
        pricing.compute(Decimal("100.00"), [], 1, Tier.GOLD, terms)
    assert refused.value.code == ErrorCode.COUPON_INVALID


# -- quote and charge agree ---------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    price = draw(st.integers(1, 20_000).map(lambda c: Decimal(c) / 100))
    return {
        "price": price,
        "wholesale": draw(wholesale(price)),
        "quantity": draw(st.integers(1, 12)),
        "tier": draw(st.sampled_from(list(Tier))),
        "coupon": draw(coupons()),
        "points_share": draw(st.sampled_from([0, 0.5, 1])),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
async def test_quote_and_charge_agree(stack, scenario: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    tiers_ = [{"minQuantity": q, "unitPrice": str(p)} for q, p in scenario["wholesale"]]
    product = await make_product(price=str(scenario["price"]), keys=scenario["quantity"], wholesale_tiers=tiers_)
    user = await make_user()
    await User.filter(id=user.id).update(tier=scenario["tier"])
    user = await User.get(id=user.id)
    actor = Actor(user=user)
    code = None
    terms = scenario["coupon"]
    if terms is not None:
        coupon = await make_coupon(kind=terms.kind, value=terms.value, min_spend=terms.min_spend)
        await hold(user.id, coupon)
        code = coupon.code
    await give_points(user, 10**6)
    request = pricing.PriceRequest(product.id, scenario["quantity"], code, 0)
    try:
        bare = await pricing.price(actor, request)
    except UserFacingError as error:
        assert error.code == ErrorCode.COUPON_INVALID
        return
    points_to_use = int(bare.quote.max_points * scenario["points_share"])
    quote = (await pricing.price(actor, pricing.PriceRequest(product.id, scenario["quantity"], code, points_to_use))).quote
    order = await orders.create_order(actor, orders.NewOrder(
        product_id=product.id, quantity=scenario["quantity"], idempotency_key=uuid.uuid4().hex,
        coupon_code=code, points_to_use=points_to_use,
    ))
    stored = await Order.get(id=order.id)
    assert stored.total == quote.total
    assert (stored.unit_price, stored.tier_discount, stored.coupon_discount, stored.points_used, stored.points_discount) == (
        quote.unit_price, quote.tier_discount, quote.coupon_discount, quote.points_used, quote.points_discount)
    assert sum((line.amount for line in pricing.order_lines(stored)[:-1]), Decimal("0")) == stored.total


async def test_quote_and_charge_agree_through_graphql(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(price="12.34", keys=30, wholesale_tiers=[{"minQuantity": 5, "unitPrice": "11.11"}])
    for tier, quantity, kind, value, points_share in [
        (Tier.NORMAL, 1, None, None, 0),
        (Tier.SILVER, 5, CouponKind.PERCENT, "12", 1),
        (Tier.GOLD, 7, CouponKind.FIXED, "3.33", 0.5),
        (Tier.GOLD, 2, CouponKind.THRESHOLD, "5.00", 1),
    ]:
        user = await make_user()
        await User.filter(id=user.id).update(tier=tier)
        client = await as_client(make_client, user)
        await give_points(user, 5000)
        code = None
        if kind is not None:
            coupon = await make_coupon(kind=kind, value=Decimal(value), min_spend=Decimal("10.00") if kind == CouponKind.THRESHOLD else 0)
            await hold(user.id, coupon)
            code = coupon.code
        base = {"productId": gid("Product", product.id), "quantity": quantity, "couponCode": code}
        first = (await client.gql(QUOTE, {"input": base}))["priceQuote"]
        assert first["errors"] == [], first
        points_to_use = int(first["quote"]["maxPointsUsable"] * points_share)
        quote = (await client.gql(QUOTE, {"input": {**base, "pointsToUse": points_to_use}}))["priceQuote"]["quote"]
        created = (await client.gql(CREATE, {"input": {**base, "pointsToUse": points_to_use,
                                                       "idempotencyKey": uuid.uuid4().hex}}))["createOrder"]
        assert created["errors"] == [], created
        order = created["order"]
        assert order["total"] == quote["total"], (tier, kind, quote, order)
        assert order["tierDiscount"] == quote["tierDiscount"] and order["couponDiscount"] == quote["couponDiscount"]
        assert order["pointsUsed"] == points_to_use
        assert sum(Decimal(line["amount"]["amount"]) for line in quote["lines"][:-1]) == Decimal(quote["total"]["amount"])


async def test_quote_errors(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product(price="10.00", keys=3)
    user = await make_user()
    client = await as_client(make_client, user)
    cases = [
        ({"pointsToUse": 50}, "INSUFFICIENT_BALANCE"),
        ({"pointsToUse": -1}, "INVALID_INPUT"),
        ({"couponCode": "NOPE"}, "COUPON_INVALID"),
        ({"quantity": 0}, "INVALID_INPUT"),
        ({"productId": gid("Product", 10**12)}, "NOT_FOUND"),
    ]
    for extra, code in cases:
        payload = (await client.gql(QUOTE, {"input": {"productId": gid("Product", product.id), **extra}}))["priceQuote"]
        assert payload["errors"][0]["code"] == code, (extra, payload)
    await give_points(user, 1000)
    too_many = (await client.gql(QUOTE, {"input": {"productId": gid("Product", product.id), "pointsToUse": 201}}))
    assert too_many["priceQuote"]["errors"][0] == {"code": "INVALID_INPUT", "field": "pointsToUse"}
    anonymous = (await make_client().gql(QUOTE, {"input": {"productId": gid("Product", product.id)}}))["priceQuote"]
    assert anonymous["errors"] == [] and anonymous["quote"]["total"]["amount"] == "10.00"
