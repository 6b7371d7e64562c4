"""Products side by side (``compareProducts``): price per unit (list and best wholesale), the
delivery promise against the shop's measured delivery times (resolvers/commerce/promises.py),
rating, verified reviews and sales. Three queries for any number of products."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tortoise.functions import Count

from models.commerce.catalog import Product, ProductStatus
from models.commerce.merchants import MerchantStatus
from models.community.posts import ContentStatus, Post, PostKind
from resolvers.commerce import pricing
from resolvers.commerce.promises import DeliveryStats, delivery_stats
from resolvers.errors import invalid

MAX_COMPARED = 10


@dataclass(frozen=True)
class Compared:
    product: Product
    unit_price: Decimal
    best_unit_price: Decimal  # the lowest wholesale tier's, or the list price
    best_unit_price_from: int  # the quantity it starts at
    promise_minutes: int
    delivery: DeliveryStats
    rating: float | None
    review_count: int
    verified_review_count: int
    sold_count: int


async def compare(product_ids: list[int]) -> list[Compared]:
    """The listed products among ``product_ids``, in the order asked (2 to 10 distinct ids)."""
    ids = list(dict.fromkeys(product_ids))
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise invalid("ids", f"Compare 2 to {MAX_COMPARED} different products.")
    found = {p.id: p for p in await Product.filter(id__in=ids, status=ProductStatus.ACTIVE,
                                                   merchant__status=MerchantStatus.ACTIVE)}
    products = [found[i] for i in ids if i in found]
    if not products:
        return []
    merchants = sorted({p.merchant_id for p in products})
    stats = dict(zip(merchants, await delivery_stats(merchants), strict=True))
    verified = dict(await Post.filter(product_id__in=[p.id for p in products], kind=PostKind.REVIEW,
                                      verified_purchase=True, status=ContentStatus.VISIBLE)
                    .annotate(n=Count("id")).group_by("product_id").values_list("product_id", "n"))
    result = []
    for p in products:
        tiers = pricing.parse_tiers(p.wholesale_tiers)
        best_from, best = min(tiers, key=lambda t: (t[1], t[0])) if tiers else (p.min_quantity, p.price)
        if best > p.price:
            best_from, best = p.min_quantity, p.price
        result.append(Compared(
            product=p, unit_price=p.price.quantize(pricing.CENT), best_unit_price=Decimal(best).quantize(pricing.CENT),
            best_unit_price_from=int(best_from), promise_minutes=p.delivery_promise_minutes,
            delivery=stats[p.merchant_id],
            rating=round(p.rating_sum / p.review_count, 2) if p.review_count else None,
            review_count=p.review_count, verified_review_count=int(verified.get(p.id, 0)), sold_count=p.sold_count,
        ))
    return result
