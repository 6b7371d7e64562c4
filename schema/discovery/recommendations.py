"""Recommendations in the graph: `recommendations`, `compareProducts` and the staff's
`recommendationStats` (resolvers/discovery/ decides everything; this module only translates)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

import strawberry

from models.community.posts import ContentStatus
from resolvers.discovery import comparison, measurement, recommendations
from resolvers.discovery.reasons import ReasonKind
from resolvers.discovery.recommendations import Surface
from schema.base import Money, decode_id, describe_values, graph_type
from schema.commerce.catalog import Product
from schema.commerce.promises import DeliveryStats
from schema.context import Info

if TYPE_CHECKING:
    from schema.community.types import Post

RecommendationSurface = describe_values(
    strawberry.enum(Surface, name="RecommendationSurface", description="Where recommendations are shown."),
    HOME="The home page: for the viewer (or their device), from what they bought, read and viewed.",
    PRODUCT="A product page: products popular with buyers of `productId`.",
    POST="A post page: the products the post is about, and what their buyers also buy.",
    AFTER_PURCHASE="After buying `productId`: what its buyers buy next, and the guides and reviews worth reading.",
    CIRCLE="A purchaser circle (of `productId`): what its members buy.",
)
RecommendationReasonKind = describe_values(
    strawberry.enum(ReasonKind, name="RecommendationReasonKind", description="Why a product is recommended."),
    BECAUSE_YOU_BOUGHT="Bought together with something the viewer bought.",
    POPULAR_WITH_BUYERS_OF="Popular with the buyers of another product.",
    FROM_GUIDE_YOU_READ="About a guide or post the viewer read, liked or wrote.",
    TRENDING_IN_CIRCLE="Trending among the members of a purchaser circle.",
    TRENDING="Trending across the shop (also the cold-start answer).",
    NEW_AND_WELL_REVIEWED="Recently listed and well reviewed (cold start).",
)


@strawberry.type(description="Why a product is recommended, for the client to show.")
class RecommendationReason:
    kind: RecommendationReasonKind = strawberry.field(description="The kind of reason, for styling.")
    text: str = strawberry.field(description="A sentence to show, e.g. \"Popular with buyers of X\".")
    reference_id: int | None = strawberry.field(
        description="The database key of the product or post the reason names; null for trending and new.")


@strawberry.type(description="One recommended product.")
class Recommendation:
    product: Product = strawberry.field(description="The product, on sale now.")
    reason: RecommendationReason = strawberry.field(description="Why it is recommended.")
    token: str = strawberry.field(description="Signed attribution token: send it back with RECOMMENDATION_IMPRESSION "
                                              "and RECOMMENDATION_CLICK events (`track`).")
    score: float = strawberry.field(description="The model's score (higher first); for diagnostics only.")


@strawberry.type(description="An answer of `recommendations`.")
class Recommendations:
    items: list[Recommendation] = strawberry.field(description="Products, best first; never empty while anything "
                                                                "is on sale.")
    model_version: str = strawberry.field(description="The model that answered (\"popularity\" for the baseline).")
    _post_ids: strawberry.Private[list[int]]

    @strawberry.field(description="Guides and reviews worth reading (AFTER_PURCHASE and POST surfaces; "
                                  "empty elsewhere), visible posts only.")
    async def posts(self, info: Info) -> list[Annotated[Post, strawberry.lazy("schema.community.types")]]:
        found = await info.context.loaders.post.load_many(self._post_ids)
        return [graph_type("Post").from_model(p) for p in found if p is not None and p.status == ContentStatus.VISIBLE]


@strawberry.type(description="One product in a comparison.")
class ProductComparison:
    product: Product = strawberry.field(description="The product.")
    unit_price: Money = strawberry.field(description="List price of one unit.")
    best_unit_price: Money = strawberry.field(description="The lowest unit price, with the best wholesale tier.")
    best_unit_price_from: int = strawberry.field(description="The quantity from which `bestUnitPrice` applies.")
    promise_minutes: int = strawberry.field(description="Promised delivery time after payment, in minutes.")
    measured_delivery: DeliveryStats = strawberry.field(description="The shop's measured delivery times.")
    rating: float | None = strawberry.field(description="Average review rating; null before the first review.")
    review_count: int = strawberry.field(description="Reviews that rated it.")
    verified_review_count: int = strawberry.field(description="Visible reviews by verified buyers.")
    sold_count: int = strawberry.field(description="Units delivered, all time.")


@strawberry.type(description="Recommendation performance for one day, surface and model version.")
class RecommendationDay:
    day: date = strawberry.field(description="The day (UTC).")
    surface: str = strawberry.field(description="The surface the recommendations were shown on.")
    model_version: str = strawberry.field(description="The model version that made them.")
    impressions: int = strawberry.field(description="RECOMMENDATION_IMPRESSION events with a valid token.")
    clicks: int = strawberry.field(description="RECOMMENDATION_CLICK events with a valid token.")
    ctr: float | None = strawberry.field(description="Clicks per impression; null without impressions.")
    orders: int = strawberry.field(description="Paid orders attributed to a click (same buyer and product, "
                                               "within the attribution window).")
    conversion: float | None = strawberry.field(description="Attributed orders per click; null without clicks.")
    gmv: Money = strawberry.field(description="Total of the attributed orders.")
    gmv_share: float | None = strawberry.field(description="Attributed GMV over all paid GMV of the day; null "
                                                           "when nothing was paid.")


@strawberry.type(description="Recommendation performance over a period.")
class RecommendationStats:
    days: list[RecommendationDay] = strawberry.field(description="Rows by day, surface and model version.")


def _compared(c: comparison.Compared) -> ProductComparison:
    currency = c.product.currency
    return ProductComparison(
        product=Product.from_model(c.product), unit_price=Money(amount=c.unit_price, currency=currency),
        best_unit_price=Money(amount=c.best_unit_price, currency=currency), best_unit_price_from=c.best_unit_price_from,
        promise_minutes=c.promise_minutes, measured_delivery=DeliveryStats.of(c.delivery), rating=c.rating,
        review_count=c.review_count, verified_review_count=c.verified_review_count, sold_count=c.sold_count,
    )


@strawberry.type
class RecommendationQueries:
    @strawberry.field(description="Recommended products for a surface, each with a reason and an attribution "
                                  "token. Served from lists the training job precomputes.")
    async def recommendations(
        self, info: Info,
        surface: Annotated[RecommendationSurface, strawberry.argument(description="Where they will be shown.")],
        product_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="The product (PRODUCT, AFTER_PURCHASE, CIRCLE).")] = None,
        post_id: Annotated[strawberry.ID | None, strawberry.argument(description="The post (POST).")] = None,
        device_id: Annotated[str | None, strawberry.argument(
            description="An anonymous viewer's device id (as sent to `track`), for HOME.")] = None,
        first: Annotated[int, strawberry.argument(description="How many (1 to 50).")] = 10,
    ) -> Recommendations:
        product = decode_id(product_id, "Product", "productId") if product_id is not None else None
        post = decode_id(post_id, "Post", "postId") if post_id is not None else None
        result = await recommendations.recommend(info.context.actor, Surface(surface.value), product_id=product,
                                                 post_id=post, device_id=device_id, first=first)
        return Recommendations(
            items=[Recommendation(product=Product.from_model(r.product),
                                  reason=RecommendationReason(kind=r.reason_kind, text=r.reason_text,
                                                              reference_id=r.reason_ref),
                                  token=r.token, score=r.score) for r in result.items],
            model_version=result.model_version, _post_ids=result.post_ids,
        )

    @strawberry.field(description="A few listed products side by side: price per unit, delivery promise and "
                                  "measured delivery, rating, verified reviews, sales (2 to 10 products).")
    async def compare_products(
        self, ids: Annotated[list[strawberry.ID], strawberry.argument(description="Product global IDs.")],
    ) -> list[ProductComparison]:
        keys = [decode_id(i, "Product", "ids") for i in ids]
        return [_compared(c) for c in await comparison.compare(keys)]

    @strawberry.field(description="Staff: recommendation CTR, conversion and GMV share per day, surface and model "
                                  "version, from real events; null for anyone else.")
    async def recommendation_stats(
        self, info: Info,
        from_: Annotated[date, strawberry.argument(name="from", description="First day (UTC).")],
        to: Annotated[date, strawberry.argument(description="Last day (UTC), at most 92 days after `from`.")],
    ) -> RecommendationStats | None:
        rows = await measurement.stats(info.context.actor, from_, to)
        if rows is None:
            return None
        return RecommendationStats(days=[
            RecommendationDay(day=r.day, surface=r.surface, model_version=r.model_version, impressions=r.impressions,
                              clicks=r.clicks, ctr=r.ctr, orders=r.orders, conversion=r.conversion,
                              gmv=Money(amount=r.gmv, currency="CNY"), gmv_share=r.gmv_share)
            for r in rows
        ])
