"""What may be recommended: the products on sale, and the reading that goes with them.

A product is recommendable while it is ACTIVE in an ACTIVE shop and has stock (a CARD_KEY
product an available key, another kind a stock limit above zero or none). A *one-off* product
is one sold a unit at a time (``max_quantity`` 1: an account, a membership): its buyer owns it
and is not offered it again, while consumables (top-ups, card keys) stay recommendable, since
buying them again is the point. The training job reads a snapshot (:class:`Shelf`); serving
re-checks the same rule in its one product query (:func:`available_products`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kameng.settings import get_settings
from models.commerce.catalog import DeliveryKind, Product, ProductStatus
from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.merchants import MerchantStatus
from models.commerce.orders import OrderStatus
from models.community.posts import ContentStatus, Post, PostKind
from models.community.topics import Topic

OWNED = (OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.COMPLETED)


@dataclass
class Shelf:
    products: dict[int, dict[str, object]] = field(default_factory=dict)  # available products only
    titles: dict[int, str] = field(default_factory=dict)
    post_titles: dict[int, str] = field(default_factory=dict)
    reading: dict[int, list[int]] = field(default_factory=dict)  # product -> guides and reviews
    circles: set[int] = field(default_factory=set)  # products with a purchaser circle
    now: datetime | None = None
    new_days: float = 30

    @property
    def index_of(self) -> dict[int, dict[str, object]]:
        return self.products

    def available(self, product_id: int) -> bool:
        return product_id in self.products

    def one_off(self, product_id: int) -> bool:
        row = self.products.get(product_id)
        return row is not None and row["max_quantity"] == 1

    def category(self, product_id: int) -> int | None:
        row = self.products.get(product_id)
        return row["category_id"] if row is not None else None  # type: ignore[return-value]

    def title(self, product_id: int) -> str:
        return self.titles.get(product_id, "this product")

    def post_title(self, post_id: int) -> str:
        return self.post_titles.get(post_id, "a guide")

    def new_and_well_reviewed(self, n: int) -> list[tuple[int, float]]:
        """Newest listings first among the well reviewed: by average rating (a product without
        reviews counts as 3 of 5), then sales; the whole shelf when nothing is new."""
        assert self.now is not None
        cutoff = self.now - timedelta(days=self.new_days)

        def score(row: dict[str, object]) -> float:
            reviews = int(row["review_count"])  # type: ignore[call-overload]
            rating = int(row["rating_sum"]) / reviews if reviews else 3.0  # type: ignore[call-overload]
            return round(rating + min(int(row["sold_count"]), 1000) / 1000, 6)  # type: ignore[call-overload]

        rows = list(self.products.values())
        new = [r for r in rows if r["created_at"] >= cutoff] or rows  # type: ignore[operator]
        ranked = sorted(new, key=lambda r: (-score(r), -int(r["id"])))  # type: ignore[call-overload]
        return [(int(r["id"]), score(r)) for r in ranked[:n]]  # type: ignore[call-overload]


async def load_shelf(now: datetime, posts_per_product: int) -> Shelf:
    shelf = Shelf(now=now, new_days=get_settings().recommend_new_days)
    rows = await Product.filter(status=ProductStatus.ACTIVE, merchant__status=MerchantStatus.ACTIVE).values(
        "id", "title", "category_id", "max_quantity", "created_at", "rating_sum", "review_count", "sold_count",
        "delivery_kind", "stock_limit")
    with_keys = set(await CardKey.filter(status=CardKeyStatus.AVAILABLE).distinct().values_list("product_id", flat=True))
    for row in rows:
        shelf.titles[row["id"]] = row["title"]
        if row["delivery_kind"] == DeliveryKind.CARD_KEY:
            in_stock = row["id"] in with_keys
        else:
            in_stock = row["stock_limit"] is None or row["stock_limit"] > 0
        if in_stock:
            shelf.products[row["id"]] = row
    reading: dict[int, list[int]] = defaultdict(list)
    posts = await Post.filter(status=ContentStatus.VISIBLE, kind__in=[PostKind.GUIDE, PostKind.REVIEW],
                              product_id__isnull=False).order_by("-like_count", "-id").values_list(
        "id", "product_id", "title")
    for post_id, product_id, title in posts:
        shelf.post_titles[post_id] = title
        if len(reading[product_id]) < posts_per_product:
            reading[product_id].append(post_id)
    shelf.reading = dict(reading)
    other = await Post.filter(status=ContentStatus.VISIBLE, created_at__gte=now - timedelta(
        days=get_settings().recommend_window_days)).values_list("id", "title")
    shelf.post_titles.update(dict(other))
    shelf.circles = set(await Topic.filter(product_id__isnull=False).values_list("product_id", flat=True))
    return shelf


_ON_SALE = """p.status = 'ACTIVE' AND m.status = 'ACTIVE'
  AND (CASE WHEN p.delivery_kind = 'CARD_KEY'
            THEN EXISTS (SELECT 1 FROM card_key k WHERE k.product_id = p.id AND k.status = 'AVAILABLE')
            ELSE (p.stock_limit IS NULL OR p.stock_limit > 0) END)"""
_AVAILABLE = """
SELECT p.* FROM product p JOIN merchant m ON m.id = p.merchant_id
WHERE (p.id IN ({ids}) OR p.id IN (
    SELECT p.id FROM product p JOIN merchant m ON m.id = p.merchant_id
    WHERE {on_sale} {not_owned} {exclude} ORDER BY p.sold_count DESC, p.id DESC LIMIT {fill}))
  AND {on_sale} {not_owned}
"""
_NOT_OWNED = """AND NOT (p.max_quantity = 1 AND EXISTS (SELECT 1 FROM orders o WHERE o.product_id = p.id
  AND o.buyer_id = {buyer} AND o.status IN ({owned})))"""


def _not_owned(buyer_id: int | None) -> str:
    if buyer_id is None:
        return ""
    owned = ", ".join(f"'{s.value}'" for s in OWNED)
    return _NOT_OWNED.format(buyer=int(buyer_id), owned=owned)


async def available_products(ids: list[int], buyer_id: int | None, *, fill: int = 0,
                             exclude: int | None = None) -> dict[int, Product]:
    """One query: which of ``ids`` may be recommended now (to ``buyer_id``), plus the ``fill``
    best sellers on sale (but ``exclude``), the filler when the lists run short. Only integers
    reach the SQL text."""
    sql = _AVAILABLE.format(
        ids=", ".join(str(int(i)) for i in ids) or "NULL", on_sale=_ON_SALE, not_owned=_not_owned(buyer_id),
        exclude=f"AND p.id <> {int(exclude)}" if exclude is not None else "", fill=int(fill),
    )
    return {p.id: p for p in await Product.raw(sql)}
