"""A shop's trust profile (issue 14, item 5): every number matches the orders, tickets,
deposit and reviews the test writes, a shop with none answers nulls, and a page of shops
costs the same number of queries as one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from strawberry.relay import GlobalID

from models.accounts.users import Role
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.orders import Order, OrderStatus
from models.trust.tickets import Ticket, TicketReason, TicketStatus
from resolvers.commerce import ledger
from tests.conftest import Client, count_queries
from tests.factories import make_merchant, make_product, make_user
from tests.test_tickets import delivered_order

PROFILE = """query($id: ID!) { merchant(id: $id) { trustProfile {
  delivery { deliveredOrders medianSeconds p95Seconds onTimeShare }
  ticketsOpened firstResponse { count medianSeconds p95Seconds } resolution { count medianSeconds p95Seconds }
  ordersPaid disputeRate refundRate deposit { amount } reviewCount reviewRating } } }"""


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


async def ticket(order: Order, *, first_response: int | None, resolution: int | None,
                 status: TicketStatus = TicketStatus.WAITING_ON_BUYER) -> Ticket:
    now = datetime.now(UTC)
    return await Ticket.create(
        order_id=order.id, buyer_id=order.buyer_id, merchant_id=order.merchant_id, reason=TicketReason.OTHER,
        status=status, first_response_due_at=now, resolution_due_at=now, first_response_seconds=first_response,
        resolution_seconds=resolution, first_response_at=now if first_response is not None else None,
    )


async def test_the_profile_says_what_the_orders_and_tickets_say(client: Client) -> None:
    owner = await make_user(Role.MERCHANT)
    shop = await make_merchant(owner)
    product = await make_product(shop, kind=DeliveryKind.MANUAL)
    buyer = await make_user()
    # Four orders paid in the window, delivered in 60, 120, 600 and 1200 seconds (promise: 10
    # minutes, so three on time); one of them refunded later; an old order outside the window.
    orders = []
    for seconds in (60, 120, 600, 1200):
        order = await delivered_order(buyer, shop, days_ago=2, product=product)
        await Order.filter(id=order.id).update(delivery_seconds=seconds)
        orders.append(order)
    await Order.filter(id=orders[3].id).update(status=OrderStatus.REFUNDED)
    old = await delivered_order(buyer, shop, days_ago=40, product=product)
    # Tickets on two of the four: answered after 300 s and 900 s; the first resolved in an hour.
    await ticket(orders[0], first_response=300, resolution=3600, status=TicketStatus.RESOLVED)
    await ticket(orders[1], first_response=900, resolution=None)
    # An old ticket, outside the window, on the old order.
    await Ticket.filter(id=(await ticket(old, first_response=5, resolution=5, status=TicketStatus.RESOLVED)).id).update(
        created_at=datetime.now(UTC) - timedelta(days=40))
    await ledger.post("test.fund", uuid.uuid4().hex, [(ledger.ADJUSTMENTS, Decimal("-50.00")),
                                                      (ledger.merchant_deposit(shop.id), Decimal("50.00"))])
    await Product.filter(id=product.id).update(rating_sum=9, review_count=2)

    profile = (await client.gql(PROFILE, {"id": gid("Merchant", shop.id)}))["merchant"]["trustProfile"]
    assert profile == {
        "delivery": {"deliveredOrders": 4, "medianSeconds": 120, "p95Seconds": 1200, "onTimeShare": 0.75},
        "ticketsOpened": 2,
        "firstResponse": {"count": 2, "medianSeconds": 300, "p95Seconds": 900},
        "resolution": {"count": 1, "medianSeconds": 3600, "p95Seconds": 3600},
        "ordersPaid": 4, "disputeRate": 0.5, "refundRate": 0.25,
        "deposit": {"amount": "50.00"}, "reviewCount": 2, "reviewRating": 4.5,
    }


async def test_a_shop_without_history_answers_nulls_not_zeros(client: Client) -> None:
    shop = await make_merchant()
    profile = (await client.gql(PROFILE, {"id": gid("Merchant", shop.id)}))["merchant"]["trustProfile"]
    assert profile["ticketsOpened"] == 0 and profile["ordersPaid"] == 0
    assert profile["disputeRate"] is None and profile["refundRate"] is None and profile["reviewRating"] is None
    assert profile["firstResponse"] == {"count": 0, "medianSeconds": None, "p95Seconds": None}
    assert profile["deposit"] == {"amount": "0.00"}


async def test_many_shops_cost_the_queries_of_one(client: Client) -> None:
    shops = [await make_merchant() for _ in range(6)]
    fields = "trustProfile { ticketsOpened ordersPaid disputeRate reviewRating deposit { amount } " \
             "delivery { medianSeconds } firstResponse { medianSeconds } }"

    def document(count: int) -> str:
        return "query { " + " ".join(f"m{i}: merchant(id: \"{gid('Merchant', s.id)}\") {{ {fields} }}"
                                     for i, s in enumerate(shops[:count])) + " }"

    with count_queries() as one:
        await client.gql(document(1))
    with count_queries() as six:
        await client.gql(document(6))
    assert six.count == one.count, (one.statements, six.statements)
