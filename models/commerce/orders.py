from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.commerce.catalog import Product
from models.statements import Insert, Select, Update


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    DELIVERING = "DELIVERING"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"


#: The one state machine: which status may follow which. Nothing else decides.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_PAYMENT: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED}),
    # A late payment inside the grace window revives a cancelled (expired) order.
    OrderStatus.CANCELLED: frozenset({OrderStatus.PAID}),
    OrderStatus.PAID: frozenset({OrderStatus.DELIVERING, OrderStatus.FAILED, OrderStatus.REFUNDED}),
    OrderStatus.DELIVERING: frozenset({OrderStatus.DELIVERED, OrderStatus.FAILED}),
    OrderStatus.DELIVERED: frozenset({OrderStatus.COMPLETED, OrderStatus.REFUNDED}),
    OrderStatus.FAILED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.COMPLETED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}

#: Statuses in which the buyer's money sits in escrow.
ESCROWED = frozenset({OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.FAILED})


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


class Order(Model):
    id = fields.BigIntField(primary_key=True)
    order_no = fields.CharField(max_length=32, unique=True)
    buyer: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "kameng.User", related_name="orders", null=True, on_delete=fields.RESTRICT
    )
    product: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Product", related_name="orders", on_delete=fields.RESTRICT
    )
    merchant: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.Merchant", related_name="orders", on_delete=fields.RESTRICT
    )
    quantity = fields.IntField()
    unit_price = fields.DecimalField(max_digits=12, decimal_places=2)
    total = fields.DecimalField(max_digits=12, decimal_places=2)
    currency = fields.CharField(max_length=3, default="CNY")
    status = fields.CharEnumField(OrderStatus, max_length=20, default=OrderStatus.PENDING_PAYMENT)
    # Scope "u:<buyer id>" or "g:<contact email>": the same key in a scope is the same order.
    idempotency_scope = fields.CharField(max_length=280)
    idempotency_key = fields.CharField(max_length=80)
    contact_email = fields.CharField(max_length=254, default="")
    query_password_hash = fields.CharField(max_length=255, default="")
    topup_account = fields.CharField(max_length=120, default="")
    from_post_id = fields.BigIntField(null=True)  # the post the order was placed from (creators)
    # The pricing engine's breakdown (resolvers/commerce/pricing.py): list price x quantity with the
    # wholesale tier is `unit_price * quantity`; then tier, coupon and points discounts.
    tier_discount = fields.DecimalField(max_digits=12, decimal_places=2, default=0)
    coupon_discount = fields.DecimalField(max_digits=12, decimal_places=2, default=0)
    user_coupon_id = fields.BigIntField(null=True)
    points_used = fields.IntField(default=0)
    points_discount = fields.DecimalField(max_digits=12, decimal_places=2, default=0)
    expires_at = fields.DatetimeField()  # unpaid after this: cancelled, stock released
    paid_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    delivery_due_at = fields.DatetimeField(null=True)  # MANUAL: the merchant's deadline
    # Recorded at delivery: seconds from payment to delivery, and the promise it is held to
    # (the product's at that moment), so the shop's stats never depend on later edits.
    delivery_seconds = fields.IntField(null=True)
    promised_minutes = fields.IntField(null=True)
    # A paid gift waits for its recipient: delivery holds until the claim, and the delivery
    # clock starts then (resolvers/commerce/gifts.py).
    awaiting_claim = fields.BooleanField(default=False)
    delivery_from = fields.DatetimeField(null=True)
    # Repurchase (issue 13): what was delivered is valid until then (the product's validity
    # from delivery); null: no validity. Not ``expires_at``, the unpaid reservation's end.
    valid_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    async def product_column(self, name: str) -> Any:
        """One column of the order's product: from the product loaded with the order
        (``select_related("product")``, as the delivery job does) or else read on its own."""
        loaded = getattr(self, "_product", None)
        if isinstance(loaded, Model):
            return getattr(loaded, name)
        return await Product.filter(id=self.product_id).first().values_list(name, flat=True)

    class Meta:
        table = "orders"
        unique_together = (("idempotency_scope", "idempotency_key"),)
        indexes = (("buyer_id", "id"), ("status", "expires_at"), ("status", "delivered_at"), ("merchant_id", "id"),
                   ("merchant_id", "delivered_at"))


class OrderEvent(Model):
    """One transition of an order: when, to what, by whom, why."""

    id = fields.BigIntField(primary_key=True)
    order: fields.ForeignKeyRelation[Order] = fields.ForeignKeyField(
        "kameng.Order", related_name="events", on_delete=fields.CASCADE
    )
    status = fields.CharEnumField(OrderStatus, max_length=20)
    actor = fields.CharField(max_length=40, default="system")  # "user:<id>", "system", "gateway:<name>"
    note = fields.CharField(max_length=300, default="")
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "order_event"
        indexes = (("order_id", "id"),)


# The reads every paid order makes, as fixed statements (models/statements.py).
#: createOrder's idempotency check.
ORDER_BY_REQUEST = Select(Order, "idempotency_scope", "idempotency_key", limit=1)
#: payOrder's order, and the live-status subscription's current state.
ORDER_BY_ID = Select(Order, "id", limit=1)
#: The live-status subscription's last transition.
LAST_ORDER_EVENT = Select(OrderEvent, "order_id", order_by="-id", limit=1)
#: The state machine's conditional update and the event it records (resolvers/commerce/orders.py
#: ``transition``).
ORDER_IF_STATUS = Update(Order, "id", "status")
ORDER_EVENTS = Insert(OrderEvent)
#: createOrder's order, with its first event (``Insert.run_with``).
ORDERS = Insert(Order)
#: The delivery job's order with its product, and one order with its shop (who may see it).
ORDER_WITH_PRODUCT = Select(Order, "id", limit=1, related="product")
ORDER_WITH_MERCHANT = Select(Order, "id", limit=1, related="merchant")
