"""models/statements.py: the hot reads written once per dialect answer as the ORM would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tortoise.transactions import in_transaction

from models.commerce.orders import LAST_ORDER_EVENT, ORDER_BY_ID, ORDER_BY_REQUEST, Order, OrderEvent, OrderStatus
from models.statements import Select
from tests.factories import make_product, make_users


def columns(instance: object, model: type) -> dict[str, object]:
    return {name: getattr(instance, name) for name in model._meta.fields_db_projection}


async def an_order(buyer_id: int, status: OrderStatus = OrderStatus.PENDING_PAYMENT) -> Order:
    product = await make_product(price="12.50")
    now = datetime.now(UTC)
    return await Order.create(
        order_no=f"K-{uuid.uuid4().hex[:12]}", buyer_id=buyer_id, product_id=product.id, merchant_id=product.merchant_id,
        quantity=1, unit_price=Decimal("12.50"), total=Decimal("12.50"), currency="CNY", status=status,
        idempotency_scope=f"u:{buyer_id}", idempotency_key=uuid.uuid4().hex, expires_at=now + timedelta(minutes=15),
        paid_at=now if status != OrderStatus.PENDING_PAYMENT else None,
    )


async def test_a_fixed_select_builds_the_same_instances_as_the_orm(stack) -> None:  # type: ignore[no-untyped-def]
    (buyer,) = await make_users(1)
    order = await an_order(buyer.id, OrderStatus.PAID)
    expected = await Order.get(id=order.id)
    by_id = await ORDER_BY_ID.first(order.id)
    by_request = await ORDER_BY_REQUEST.first(order.idempotency_scope, order.idempotency_key)
    for found in (by_id, by_request):
        assert found is not None and not found._partial and found._saved_in_db
        assert columns(found, Order) == columns(expected, Order)
        assert isinstance(found.status, OrderStatus) and found.status == OrderStatus.PAID
    assert await ORDER_BY_ID.first(order.id + 10_000) is None
    assert await ORDER_BY_REQUEST.first(order.idempotency_scope, "another key") is None
    # The instance saves like one the ORM loaded.
    assert by_id is not None
    by_id.quantity = 2
    await by_id.save(update_fields=["quantity"])
    assert (await Order.get(id=order.id)).quantity == 2


async def test_order_and_limit_and_the_callers_transaction(stack) -> None:  # type: ignore[no-untyped-def]
    (buyer,) = await make_users(1)
    order = await an_order(buyer.id)
    assert await LAST_ORDER_EVENT.first(order.id) is None
    for status in (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.DELIVERING):
        await OrderEvent.create(order_id=order.id, status=status, note=status.value)
    last = await LAST_ORDER_EVENT.first(order.id)
    expected = await OrderEvent.filter(order_id=order.id).order_by("-id").first()
    assert last is not None and expected is not None and columns(last, OrderEvent) == columns(expected, OrderEvent)
    assert last.status == OrderStatus.DELIVERING
    every = await Select(OrderEvent, "order_id", order_by="id").all(order.id)
    assert [event.status for event in every] == [OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.DELIVERING]
    # Inside a transaction the statement runs on it: it sees the transaction's own writes,
    # and nothing of them once it is rolled back.
    try:
        async with in_transaction():
            event = await OrderEvent.create(order_id=order.id, status=OrderStatus.DELIVERED, note="inside")
            seen = await LAST_ORDER_EVENT.first(order.id)
            assert seen is not None and seen.id == event.id
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    after = await LAST_ORDER_EVENT.first(order.id)
    assert after is not None and after.status == OrderStatus.DELIVERING


async def test_the_statement_text_is_written_once_per_dialect(stack) -> None:  # type: ignore[no-untyped-def]
    select = Select(OrderEvent, "order_id", "status", order_by="-id", limit=1)
    assert select.sql("postgres") is select.sql("postgres")
    assert select.sql("postgres").endswith('WHERE t."order_id" = $1 AND t."status" = $2 ORDER BY t."id" DESC LIMIT 1')
    assert select.sql("sqlite").endswith('WHERE t."order_id" = ? AND t."status" = ? ORDER BY t."id" DESC LIMIT 1')
    try:
        await select.first(1)
    except TypeError:
        pass
    else:
        raise AssertionError("a missing value must be refused")


async def test_a_fixed_conditional_update_changes_only_what_still_matches(stack) -> None:  # type: ignore[no-untyped-def]
    from models.commerce.orders import ORDER_IF_STATUS

    (buyer,) = await make_users(1)
    order = await an_order(buyer.id)
    paid_at = datetime.now(UTC).replace(microsecond=0)
    changes = {"status": OrderStatus.PAID, "paid_at": paid_at, "updated_at": paid_at}
    assert await ORDER_IF_STATUS.run(changes, order.id, OrderStatus.PENDING_PAYMENT) == 1
    assert await ORDER_IF_STATUS.run(changes, order.id, OrderStatus.PENDING_PAYMENT) == 0  # the loser of a race
    stored = await Order.get(id=order.id)
    assert stored.status == OrderStatus.PAID and stored.paid_at == paid_at and stored.updated_at == paid_at
    assert ORDER_IF_STATUS.sql("postgres", tuple(changes)) is ORDER_IF_STATUS.sql("postgres", tuple(changes))
    assert ORDER_IF_STATUS.sql("postgres", ("status",)) == 'UPDATE "orders" SET "status" = $1 WHERE "id" = $2 AND "status" = $3'


async def test_a_conditional_update_and_the_event_it_records_go_together_or_not_at_all(stack) -> None:  # type: ignore[no-untyped-def]
    import structlog
    from tortoise import connections

    from models.commerce.orders import ORDER_EVENTS, ORDER_IF_STATUS
    from tests.conftest import count_queries

    (buyer,) = await make_users(1)
    order = await an_order(buyer.id)
    paid_at = datetime.now(UTC).replace(microsecond=0)
    changes = {"status": OrderStatus.PAID, "paid_at": paid_at, "updated_at": paid_at}
    won = OrderEvent(order_id=order.id, status=OrderStatus.PAID, actor="user:1", note="paid")
    with count_queries() as counted, structlog.contextvars.bound_contextvars(request_id=uuid.uuid4().hex):
        async with in_transaction():
            assert await ORDER_IF_STATUS.run_then_insert(changes, order.id, OrderStatus.PENDING_PAYMENT,
                                                         then=ORDER_EVENTS, row=won)
    assert counted.count == (1 if connections.get("default").capabilities.dialect == "postgres" else 2), counted.statements
    # The loser of a race changes nothing and records nothing.
    lost = OrderEvent(order_id=order.id, status=OrderStatus.PAID, actor="user:2", note="paid again")
    assert not await ORDER_IF_STATUS.run_then_insert(changes, order.id, OrderStatus.PENDING_PAYMENT,
                                                     then=ORDER_EVENTS, row=lost)
    assert lost.id is None
    stored = await OrderEvent.filter(order_id=order.id).order_by("id")
    assert [(e.id, e.status, e.actor, e.note, e.at) for e in stored] == [(won.id, OrderStatus.PAID, "user:1", "paid", won.at)]
    assert (await Order.get(id=order.id)).paid_at == paid_at


async def test_a_new_row_and_the_row_that_records_it_go_in_together(stack) -> None:  # type: ignore[no-untyped-def]
    """``Insert.run_with``: createOrder's order and its first event, one statement on
    PostgreSQL; both ids set, every column as the ORM would store it; a clash on the order's
    unique key writes neither."""
    import pytest
    import structlog
    from tortoise import connections
    from tortoise.exceptions import IntegrityError

    from models.commerce.orders import ORDER_EVENTS, ORDERS
    from tests.conftest import count_queries

    (buyer,) = await make_users(1)
    template = await an_order(buyer.id)  # a product and a shop to order from
    now = datetime.now(UTC)

    def new(key: str) -> Order:
        return Order(order_no=f"K-{uuid.uuid4().hex[:12]}", buyer_id=buyer.id, product_id=template.product_id,
                     merchant_id=template.merchant_id, quantity=2, unit_price=Decimal("12.50"), total=Decimal("25.00"),
                     currency="CNY", idempotency_scope=f"u:{buyer.id}", idempotency_key=key,
                     expires_at=now + timedelta(minutes=15))

    order, event = new("same-key-123"), OrderEvent(status=OrderStatus.PENDING_PAYMENT, actor="user:1", note="created")
    with count_queries() as counted, structlog.contextvars.bound_contextvars(request_id=uuid.uuid4().hex):
        async with in_transaction():
            await ORDERS.run_with(order, then=ORDER_EVENTS, child=event, link="order_id")
    assert counted.count == (1 if connections.get("default").capabilities.dialect == "postgres" else 2), counted.statements
    assert order.id is not None and event.id is not None and event.order_id == order.id
    assert columns(await Order.get(id=order.id), Order) == columns(order, Order)
    assert columns(await OrderEvent.get(id=event.id), OrderEvent) == columns(event, OrderEvent)

    clash, lost = new("same-key-123"), OrderEvent(status=OrderStatus.PENDING_PAYMENT, actor="user:1", note="again")
    with pytest.raises(IntegrityError):
        async with in_transaction():
            await ORDERS.run_with(clash, then=ORDER_EVENTS, child=lost, link="order_id")
    assert await Order.filter(idempotency_key="same-key-123").count() == 1
    assert await OrderEvent.filter(note="again").count() == 0


async def test_a_fixed_select_brings_its_related_row_as_select_related_does(stack) -> None:  # type: ignore[no-untyped-def]
    from models.commerce.catalog import PRODUCT_WITH_MERCHANT, Product
    from models.commerce.merchants import Merchant
    from models.commerce.orders import ORDER_WITH_MERCHANT, ORDER_WITH_PRODUCT

    (buyer,) = await make_users(1)
    order = await an_order(buyer.id)
    expected = await Order.filter(id=order.id).select_related("product").first()
    found = await ORDER_WITH_PRODUCT.first(order.id)
    assert expected is not None and found is not None
    assert columns(found, Order) == columns(expected, Order)
    assert columns(found.product, Product) == columns(expected.product, Product) and not found.product._partial
    with_shop = await ORDER_WITH_MERCHANT.first(order.id)
    assert with_shop is not None and columns(with_shop.merchant, Merchant) == columns(await Merchant.get(id=order.merchant_id), Merchant)
    product = await PRODUCT_WITH_MERCHANT.first(order.product_id)
    assert product is not None and product.merchant.id == product.merchant_id
    assert await ORDER_WITH_PRODUCT.first(order.id + 10_000) is None
    assert ORDER_WITH_PRODUCT.sql("postgres").split(" FROM ")[1].startswith(
        '"orders" t LEFT JOIN "product" r ON r."id" = t."product_id" WHERE t."id" = $1')


async def test_insert_new_returns_the_rows_that_were_new_and_nothing_for_a_taken_key(stack) -> None:  # type: ignore[no-untyped-def]
    from models.accounts.notifications import Notification
    from models.commerce.ledger import Account
    from models.statements import InsertNew

    new_accounts, prefix = InsertNew(Account), f"test:{uuid.uuid4().hex[:8]}:"
    first = await new_accounts.run([Account(code=prefix + "a", currency="CNY", allow_negative=False)])
    assert len(first) == 1 and first[0]._saved_in_db and not first[0]._partial
    assert columns(first[0], Account) == columns(await Account.get(code=prefix + "a"), Account)
    # A taken key is no error and no row: only the new one comes back.
    again = await new_accounts.run([Account(code=prefix + code, currency="CNY", allow_negative=True) for code in "ab"])
    assert [(a.code, a.allow_negative) for a in again] == [(prefix + "b", True)]
    assert not (await Account.get(code=prefix + "a")).allow_negative
    # In the caller's transaction: gone with it.
    try:
        async with in_transaction():
            assert len(await new_accounts.run([Account(code=prefix + "c", currency="CNY")])) == 1
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert not await Account.filter(code=prefix + "c").exists()
    # The fields fill what the ORM fills (auto_now_add, JSON) and the row reads back as the ORM's.
    (user,) = await make_users(1)
    new_notes = InsertNew(Notification)
    made = await new_notes.run([Notification(user_id=user.id, kind="TEST", title="t", data={"a": [1]}, dedupe_key=prefix)])
    assert len(made) == 1 and made[0].created_at is not None and made[0].data == {"a": [1]}
    assert columns(made[0], Notification) == columns(await Notification.get(id=made[0].id), Notification)
    assert await new_notes.run([Notification(user_id=user.id, kind="TEST", title="again", dedupe_key=prefix)]) == []
    assert new_accounts.sql("postgres", 2) is new_accounts.sql("postgres", 2)
    assert new_accounts.sql("postgres", 2).startswith(
        'INSERT INTO "ledger_account" ("code", "currency", "allow_negative", "balance") VALUES ($1, $2, $3, $4), ($5,')


async def test_rows_of_two_tables_go_in_one_statement_on_postgresql_and_keep_their_order(stack) -> None:  # type: ignore[no-untyped-def]
    import structlog
    from tortoise import connections

    from models.accounts.notifications import Notification
    from models.outbox import OutboxEntry, OutboxKind
    from models.statements import Insert, insert_together
    from tests.conftest import count_queries

    (user,) = await make_users(1)
    tag = uuid.uuid4().hex
    entries = [OutboxEntry(kind=OutboxKind.EVENT, topic=f"test:{tag}", payload={"n": n}) for n in range(3)]
    notes = [Notification(user_id=user.id, kind="TEST", title=str(n), dedupe_key=f"{tag}:{n}") for n in range(2)]
    with count_queries() as counted, structlog.contextvars.bound_contextvars(request_id=tag):
        async with in_transaction():
            await insert_together((Insert(OutboxEntry), entries), (Insert(Notification), notes), (Insert(OutboxEntry), []))
    dialect = connections.get("default").capabilities.dialect
    assert counted.count == (1 if dialect == "postgres" else 2), counted.statements
    # Ids set in the order written, each the row's own, as Insert.run sets them.
    assert all(row._saved_in_db for row in entries + notes)
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert [(e.id, e.payload) for e in entries] == [
        (e.id, e.payload) for e in await OutboxEntry.filter(topic=f"test:{tag}").order_by("id")]
    assert [(n.id, n.title) for n in notes] == [
        (n.id, n.title) for n in await Notification.filter(user_id=user.id, kind="TEST").order_by("id")]
    # More rows than one statement takes: one run per table, still every row.
    many = [OutboxEntry(kind=OutboxKind.EVENT, topic=f"test:{tag}:many", payload={}) for _ in range(Insert.BATCH + 1)]
    more = Notification(user_id=user.id, kind="TEST", title="more", dedupe_key=f"{tag}:more")
    await insert_together((Insert(OutboxEntry), many), (Insert(Notification), [more]))
    assert await OutboxEntry.filter(topic=f"test:{tag}:many").count() == Insert.BATCH + 1 and more.id is not None


async def test_counters_move_in_the_statement_that_writes_the_rows_at_commit(stack) -> None:  # type: ignore[no-untyped-def]
    """``insert_together(..., adding=...)``: a delivery's units sold ride on the commit's
    statement on PostgreSQL, summed per row; with no row to write they still move."""
    import structlog
    from tortoise import connections

    from models.commerce.catalog import SOLD_COUNT, Product
    from models.outbox import OutboxEntry, OutboxKind
    from models.statements import Insert, insert_together
    from tests.conftest import count_queries

    one, other = await make_product(price="1.00"), await make_product(price="2.00")
    tag = uuid.uuid4().hex
    entries = [OutboxEntry(kind=OutboxKind.EVENT, topic=f"test:{tag}", payload={"n": n}) for n in range(2)]
    with count_queries() as counted, structlog.contextvars.bound_contextvars(request_id=tag):
        async with in_transaction():
            await insert_together((Insert(OutboxEntry), entries),
                                  adding=[(SOLD_COUNT, other.id, 2), (SOLD_COUNT, one.id, 3), (SOLD_COUNT, other.id, 4)])
    dialect = connections.get("default").capabilities.dialect
    assert counted.count == (1 if dialect == "postgres" else 3), counted.statements
    assert all(e.id is not None for e in entries)
    assert await OutboxEntry.filter(topic=f"test:{tag}").count() == 2
    assert {p.id: p.sold_count for p in await Product.filter(id__in=[one.id, other.id])} == {one.id: 3, other.id: 6}
    await insert_together(adding=[(SOLD_COUNT, one.id, 1), (SOLD_COUNT, other.id, 0)])
    assert {p.id: p.sold_count for p in await Product.filter(id__in=[one.id, other.id])} == {one.id: 4, other.id: 6}
