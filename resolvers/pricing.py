"""What an order costs. Decimal throughout; amounts are rounded half-up to the fen (0.01)
once, at the line total, so a quote and a charge can never differ by rounding order."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from models.catalog import Product
from resolvers.errors import invalid

CENT = Decimal("0.01")


def parse_tiers(raw: object) -> list[tuple[int, Decimal]]:
    """Validate wholesale tiers: [{"minQuantity": n, "unitPrice": "x.yy"}], ascending, cheaper."""
    if not isinstance(raw, list):
        raise invalid("wholesaleTiers", "Wholesale tiers are a list.")
    tiers: list[tuple[int, Decimal]] = []
    for item in raw:
        try:
            quantity = int(item["minQuantity"])
            price = Decimal(str(item["unitPrice"]))
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise invalid("wholesaleTiers", "Each tier has minQuantity and unitPrice.") from None
        if quantity < 2 or price <= 0 or price != price.quantize(CENT):
            raise invalid("wholesaleTiers", "Tiers start at 2 units and have a positive price in fen.")
        tiers.append((quantity, price))
    tiers.sort()
    for (q1, p1), (q2, p2) in zip(tiers, tiers[1:]):
        if q1 == q2 or p2 >= p1:
            raise invalid("wholesaleTiers", "Larger quantities must have distinct thresholds and lower prices.")
    return tiers


def unit_price(product: Product, quantity: int) -> Decimal:
    """The list price, or the wholesale tier price for this quantity."""
    price = Decimal(product.price)
    for min_quantity, tier_price in parse_tiers(product.wholesale_tiers):
        if quantity >= min_quantity and tier_price < price:
            price = tier_price
    return price


def line_total(unit: Decimal, quantity: int) -> Decimal:
    return (unit * quantity).quantize(CENT, rounding=ROUND_HALF_UP)
