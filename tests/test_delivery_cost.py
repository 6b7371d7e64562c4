"""The worker's side of the busiest path: a card-key order's delivery job, counted in statements
(the API's side is tests/test_payments.py's bound)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from tortoise import connections

from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.orders import Order, OrderEvent, OrderStatus
from resolvers.commerce import delivery
from tests.conftest import count_queries
from tests.factories import make_product
from tests.test_delivery import buyer_client, gid, pk
from tests.test_payments import ORDER_ONLY

#: Statements of one card-key delivery, PAID to DELIVERED in one transaction, savepoints counted
#: (BEGIN, COMMIT and the relay's publication after the commit not). Today's count, as a bound:
#: each statement is a round trip and a few hundred µs of CPU (bench/README.md, issue 15). It
#: was 13 plus two uncounted savepoints (four round trips) around the notification's insert,
#: then 13; the outbox's rows written together at commit (three outbox rows and two trade-log
#: rows in two INSERTs) make it 10, and on PostgreSQL 9 (both INSERTs in one WITH), then 7 (each
#: of the two transitions and its event in one statement, ``Update.run_then_insert``), then 6
#: (the product's units sold added by the commit's statement, ``outbox.add_at_commit``).
DELIVER_ORDER_STATEMENTS = {"postgres": 6, "sqlite": 10}


async def test_a_card_key_delivery_costs_a_bounded_number_of_statements(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = await buyer_client(make_client)
    product = await make_product(price="10.00", keys=3)
    made = await client.gql(ORDER_ONLY, {"input": {"productId": gid("Product", product.id),
                                                   "idempotencyKey": uuid.uuid4().hex}})
    order_id = pk(made["createOrder"]["order"]["id"])
    # Paid as payOrder leaves it, without its job: this test runs the job itself.
    await Order.filter(id=order_id).update(status=OrderStatus.PAID, paid_at=datetime.now(UTC))

    # The job counts as a request here, so that the counter takes its statements.
    with count_queries() as delivering, structlog.contextvars.bound_contextvars(request_id="deliver_order"):
        await delivery.deliver_order(order_id)

    order = await Order.get(id=order_id)
    assert order.status == OrderStatus.DELIVERED and order.promised_minutes == product.delivery_promise_minutes
    assert [e.status for e in await OrderEvent.filter(order_id=order_id).order_by("id")][-2:] == [
        OrderStatus.DELIVERING, OrderStatus.DELIVERED]
    assert await CardKey.filter(order_id=order_id, status=CardKeyStatus.SOLD).count() == 1
    bound = DELIVER_ORDER_STATEMENTS[connections.get("default").capabilities.dialect]
    assert delivering.count <= bound, "\n".join(delivering.statements)
