"""What an order costs: the one pricing engine. ``priceQuote`` shows what ``compute`` says,
and ``createOrder`` charges what ``compute`` says, from the same inputs, so the quote and
the charge cannot disagree.

Decimal throughout. The rounding rule, step by step (every amount is in fen, 0.01):

1. Unit price: the list price, or the wholesale tier price for the quantity (both exact to
   the fen). Subtotal = unit price x quantity (exact: no rounding).
2. Member tier: discount = subtotal x (1 - tier price rate), rounded half-up to the fen
   (GOLD 95%, SILVER 98%: resolvers/tiers.py ``BENEFITS``).
3. Coupon, on what is left after step 2: FIXED and THRESHOLD take their value off;
   PERCENT takes ``value``% of it, rounded half-up to the fen. A minimum spend (THRESHOLD's
   满减 threshold, or any coupon's ``min_spend``) is compared with what is left after step 2.
   The coupon never takes the order below 0.01 (the smallest charge).
4. Points, on what is left after step 3: at most ``share`` of it may be paid with points
   (``KAMENG_POINTS_MAX_ORDER_SHARE`` plus the tier's bonus, never above 0.9), i.e. at most
   floor(left x share x points-per-yuan) points; points are worth points / points-per-yuan,
   rounded DOWN to the fen (the buyer never gets a fraction of a fen for free).
5. Total = what is left after step 4: always at least 0.01.

Each discount is rounded once, in this order, and the total is their exact difference.

Who bears the discounts: escrow holds the total actually paid. At settlement the platform
pays the merchant the discounts that are its own (member tier, points, platform coupons)
from ``platform:promotions``; a merchant's own coupon comes out of its proceeds
(``resolvers/commerce/promotions.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from kameng.settings import get_settings
from models.accounts.users import USER_BY_ID, Tier
from models.commerce.catalog import Product, ProductStatus
from models.loyalty.coupons import Coupon, CouponKind, UserCoupon
from models.commerce.orders import Order
from resolvers.loyalty import coupons, points, tiers
from resolvers.accounts.auth import Actor
from resolvers.decimals import strict_decimal
from resolvers.errors import ErrorCode, UserFacingError, invalid

CENT = Decimal("0.01")
MIN_CHARGE = CENT
MAX_POINTS_SHARE = Decimal("0.9")
MAX_TIERS = 20
MAX_TIER_QUANTITY = 1_000_000


def parse_tiers(raw: object) -> list[tuple[int, Decimal]]:
    """Validate wholesale tiers: [{"minQuantity": n, "unitPrice": "x.yy"}], ascending, cheaper."""
    if not isinstance(raw, list):
        raise invalid("wholesaleTiers", "Wholesale tiers are a list.")
    if len(raw) > MAX_TIERS:
        raise invalid("wholesaleTiers", f"At most {MAX_TIERS} wholesale tiers.")
    parsed: list[tuple[int, Decimal]] = []
    for item in raw:
        try:
            quantity = item["minQuantity"]
            unit = item["unitPrice"]
            # Strict: "١٢", 1e30 or a 40-digit integer used to pass int()/Decimal() and fail later.
            price = strict_decimal(repr(unit) if isinstance(unit, float) else unit, places=20)
        except (KeyError, TypeError, IndexError, ValueError):
            raise invalid("wholesaleTiers", "Each tier has minQuantity and unitPrice.") from None
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 2 <= quantity <= MAX_TIER_QUANTITY:
            raise invalid("wholesaleTiers", f"A tier's minQuantity is a whole number from 2 to {MAX_TIER_QUANTITY}.")
        if price <= 0 or price != price.quantize(CENT):
            raise invalid("wholesaleTiers", "Tiers start at 2 units and have a positive price in fen.")
        parsed.append((quantity, price))
    parsed.sort()
    for (q1, p1), (q2, p2) in zip(parsed, parsed[1:]):
        if q1 == q2 or p2 >= p1:
            raise invalid("wholesaleTiers", "Larger quantities must have distinct thresholds and lower prices.")
    return parsed


def wholesale_price(list_price: Decimal, wholesale: list[tuple[int, Decimal]], quantity: int) -> Decimal:
    price = Decimal(list_price)
    for min_quantity, tier_price in wholesale:
        if quantity >= min_quantity and tier_price < price:
            price = tier_price
    return price


def unit_price(product: Product, quantity: int) -> Decimal:
    """The list price, or the wholesale tier price for this quantity."""
    return wholesale_price(Decimal(product.price), parse_tiers(product.wholesale_tiers), quantity)


# -- the engine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CouponTerms:
    code: str
    title: str
    kind: CouponKind
    value: Decimal
    min_spend: Decimal = Decimal("0")

    @classmethod
    def of(cls, coupon: Coupon) -> CouponTerms:
        return cls(coupon.code, coupon.title, coupon.kind, Decimal(coupon.value), Decimal(coupon.min_spend))


@dataclass(frozen=True)
class PriceLine:
    kind: str  # LIST, WHOLESALE, MEMBER_TIER, COUPON, POINTS, TOTAL
    label: str
    amount: Decimal


@dataclass(frozen=True)
class Quote:
    quantity: int
    list_unit_price: Decimal
    unit_price: Decimal
    subtotal: Decimal  # unit_price x quantity
    tier: Tier
    tier_discount: Decimal
    coupon_code: str | None
    coupon_discount: Decimal
    points_used: int
    points_discount: Decimal
    max_points: int  # the most points this order could use
    total: Decimal
    currency: str = "CNY"
    lines: list[PriceLine] = field(default_factory=list)


def _half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def points_share(tier: Tier) -> Decimal:
    return min(get_settings().points_max_order_share + tiers.BENEFITS[tier].points_share_bonus, MAX_POINTS_SHARE)


def compute(
    list_price: Decimal,
    wholesale: list[tuple[int, Decimal]],
    quantity: int,
    tier: Tier = Tier.NORMAL,
    coupon: CouponTerms | None = None,
    points_to_use: int = 0,
    *,
    points_balance: int | None = None,
    currency: str = "CNY",
) -> Quote:
    """The price of ``quantity`` units, step by step (see the module docstring).

    Raises COUPON_INVALID (minimum spend not reached), INVALID_INPUT (more points than the
    order may take) or INSUFFICIENT_BALANCE (more points than ``points_balance``).
    """
    settings = get_settings()
    if quantity < 1:
        raise invalid("quantity", "Order at least one.")
    if points_to_use < 0:
        raise invalid("pointsToUse", "Points to use cannot be negative.")
    list_price = Decimal(list_price)
    unit = wholesale_price(list_price, wholesale, quantity)
    list_subtotal = list_price * quantity
    subtotal = unit * quantity
    lines = [PriceLine("LIST", f"{quantity} x {list_price}", list_subtotal)]
    if subtotal != list_subtotal:
        lines.append(PriceLine("WHOLESALE", f"wholesale price {unit} each", subtotal - list_subtotal))

    benefit = tiers.BENEFITS[tier]
    tier_discount = _half_up(subtotal * (1 - benefit.price_rate))
    left = subtotal - tier_discount
    if tier_discount:
        lines.append(PriceLine("MEMBER_TIER", f"{tier.value} member price ({benefit.price_rate:%})", -tier_discount))

    coupon_discount = Decimal("0.00")
    if coupon is not None:
        if left < coupon.min_spend:
            raise UserFacingError(
                ErrorCode.COUPON_INVALID, f"This coupon needs a spend of {coupon.min_spend}.", "couponCode"
            )
        if coupon.kind == CouponKind.PERCENT:
            coupon_discount = _half_up(left * coupon.value / 100)
        else:
            coupon_discount = Decimal(coupon.value)
        coupon_discount = max(min(coupon_discount, left - MIN_CHARGE), Decimal("0.00"))
        left -= coupon_discount
        lines.append(PriceLine("COUPON", f"coupon {coupon.code}: {coupon.title}", -coupon_discount))

    per_yuan = settings.points_per_yuan_value
    max_points = int((left * points_share(tier) * per_yuan).to_integral_value(rounding=ROUND_FLOOR))
    if points_to_use > max_points:
        raise invalid("pointsToUse", f"At most {max_points} points can pay for this order.")
    if points_balance is not None and points_to_use > points_balance:
        raise UserFacingError(ErrorCode.INSUFFICIENT_BALANCE, "You do not have that many points.", "pointsToUse")
    points_discount = (Decimal(points_to_use) / per_yuan).quantize(CENT, rounding=ROUND_FLOOR)
    left -= points_discount
    if points_to_use:
        lines.append(PriceLine("POINTS", f"{points_to_use} points", -points_discount))

    total = left.quantize(CENT)
    lines.append(PriceLine("TOTAL", "to pay", total))
    return Quote(
        quantity=quantity,
        list_unit_price=list_price,
        unit_price=unit,
        subtotal=subtotal.quantize(CENT),
        tier=tier,
        tier_discount=tier_discount,
        coupon_code=coupon.code if coupon else None,
        coupon_discount=coupon_discount.quantize(CENT),
        points_used=points_to_use,
        points_discount=points_discount,
        max_points=max_points,
        total=total,
        currency=currency,
        lines=lines,
    )


# -- the engine on real products, coupons and users -----------------------------------------


@dataclass(frozen=True)
class PriceRequest:
    product_id: int
    quantity: int
    coupon_code: str | None = None
    points_to_use: int = 0


@dataclass(frozen=True)
class Priced:
    quote: Quote
    product: Product
    user_coupon: UserCoupon | None


async def price(actor: Actor, request: PriceRequest, product: Product | None = None) -> Priced:
    """Price a request for ``actor`` (what ``priceQuote`` answers and ``createOrder`` charges)."""
    if product is None:
        product = await Product.filter(id=request.product_id, status=ProductStatus.ACTIVE).first()
        if product is None:
            raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", "productId")
    if not product.min_quantity <= request.quantity <= product.max_quantity:
        raise invalid("quantity", f"Order between {product.min_quantity} and {product.max_quantity}.")
    code = coupons.lookup_code(request.coupon_code or "", "couponCode")
    if actor.user is None and (code or request.points_to_use):
        raise UserFacingError(ErrorCode.UNAUTHENTICATED, "Sign in to use coupons or points.")
    tier = Tier.NORMAL
    terms: CouponTerms | None = None
    held: UserCoupon | None = None
    balance: int | None = None
    if actor.user is not None:
        # As it is now: the row this HTTP request's authentication read, or read afresh (a
        # WebSocket's actor is as old as its connection).
        current = actor.user if actor.read_for_request else await USER_BY_ID.first(actor.user.id)
        tier = current.tier if current is not None else Tier.NORMAL
        if code:
            held, coupon = await coupons.usable(actor.user.id, code, product)
            terms = CouponTerms.of(coupon)
        if request.points_to_use:
            balance = await points.balance(actor.user.id)
    quote = compute(
        Decimal(product.price), parse_tiers(product.wholesale_tiers), request.quantity, tier, terms,
        request.points_to_use, points_balance=balance, currency=product.currency,
    )
    return Priced(quote, product, held)


def order_lines(order: Order) -> list[PriceLine]:
    """An order's breakdown, from what it stored when it was priced."""
    subtotal = Decimal(order.unit_price) * order.quantity
    lines = [PriceLine("SUBTOTAL", f"{order.quantity} x {order.unit_price}", subtotal.quantize(CENT))]
    if order.tier_discount:
        lines.append(PriceLine("MEMBER_TIER", "member price", -Decimal(order.tier_discount)))
    if order.coupon_discount or order.user_coupon_id is not None:
        lines.append(PriceLine("COUPON", "coupon", -Decimal(order.coupon_discount)))
    if order.points_used:
        lines.append(PriceLine("POINTS", f"{order.points_used} points", -Decimal(order.points_discount)))
    lines.append(PriceLine("TOTAL", "to pay", Decimal(order.total)))
    return lines
