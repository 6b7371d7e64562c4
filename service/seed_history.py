"""The demo's past (`kameng seed --demo`): eight months of the demo shop's subscription sales to a few
hundred shoppers, with repeat buying, lapsing, visits and win-back notifications, so that the
retention report and the dashboard have something to show.

The use cases stamp the present, so this past is written directly, dated back, in bulk:
orders COMPLETED (paid, delivered and completed on their day), one ledger posting per order
(the platform's adjustments account standing in for the buyer's payment, credited to the
shop), behaviour events and notifications. No card key, coupon or point is involved. The
shoppers cannot sign in (one random, unusable password). Deterministic: a fixed seed.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kameng import clock
from kameng.security import hash_password
from models.accounts.notifications import Notification
from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind
from models.commerce.orders import Order, OrderStatus
from models.discovery.events import BehaviourEvent, EventKind
from resolvers.accounts.auth import Actor
from resolvers.commerce import catalog, ledger, merchants
from subscriptions import outbox

SHOPPERS = 320
MONTHS = 8
SEED = 20260412

#: (title, category slug, price)
PRODUCTS = [
    ("Game points 60", "history-game-points", "30.00"),
    ("Music membership, 1 month", "history-memberships", "15.00"),
    ("Cloud storage 200 GB, 1 month", "history-cloud", "21.00"),
]


@dataclass
class _Plan:
    orders: list[Order]
    events: list[BehaviourEvent]
    notes: list[Notification]


def _month_start(now: datetime, back: int) -> datetime:
    index = now.year * 12 + now.month - 1 - back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _moment(rng: random.Random, start: datetime, now: datetime) -> datetime | None:
    """A random moment in the month starting at ``start``, if it is not in the future."""
    end = _month_start(start, -1)
    at = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
    return at if at < now else None


async def build_history(staff: Actor, owner: User, shop_id: int) -> int:
    """Write the past of the owner's shop; returns the number of orders."""
    products = []
    for title, slug, price in PRODUCTS:
        category = await merchants.create_category(staff, name=title.split(",")[0], slug=slug)
        products.append(await catalog.create_product(Actor(user=owner), shop_id, catalog.ProductFields(
            title=title, description="Activated by the shop.", price=price, delivery_kind=DeliveryKind.MANUAL,
            category_id=category.id, delivery_promise_minutes=60)))

    unusable = hash_password(secrets.token_urlsafe(24))
    now = clock.now()
    shoppers = [User(email=f"shopper{i:03d}@history.demo.example.com", nickname=f"Shopper {i}", password_hash=unusable,
                     role=Role.BUYER, created_at=_month_start(now, MONTHS)) for i in range(SHOPPERS)]
    await User.bulk_create(shoppers)
    shoppers = list(await User.filter(email__endswith="@history.demo.example.com").order_by("id"))

    plan = _plan(random.Random(SEED), shoppers, products, shop_id, now)
    await Order.bulk_create(plan.orders, batch_size=500)
    await BehaviourEvent.bulk_create(plan.events, batch_size=1000)
    await Notification.bulk_create(plan.notes, batch_size=500)
    saved = await Order.filter(merchant_id=shop_id, order_no__startswith="H").values_list("id", "total")
    async with outbox.atomic():
        for order_id, total in saved:
            await ledger.post("demo.history", str(order_id), [(ledger.ADJUSTMENTS, -Decimal(total)),
                                                             (ledger.merchant_balance(shop_id), Decimal(total))])
    return len(saved)


def _plan(rng: random.Random, shoppers: list[User], products: list, shop_id: int, now: datetime) -> _Plan:
    plan = _Plan([], [], [])
    for user in shoppers:
        first = rng.choices(range(MONTHS), weights=[1 + m for m in range(MONTHS)])[0]  # more recent, more newcomers
        loyalty = rng.betavariate(2, 3)  # how likely to buy again in a month
        favourite = rng.randrange(len(products))
        wanderer = rng.random() < 0.3  # buys across categories
        for back in range(MONTHS - first, -1, -1):  # from the first month to this one
            month = _month_start(now, back)
            age = MONTHS - first - back
            bought = age == 0 or rng.random() < loyalty * (0.85 ** (age - 1))
            # Buyers browse; the lapsed mostly stay away unless a message brings them back.
            visits = rng.randint(2, 6) if bought else (rng.randint(1, 2) if rng.random() < loyalty * 0.5 else 0)
            for _ in range(visits):
                at = _moment(rng, month, now)
                if at is not None:
                    plan.events.append(BehaviourEvent(
                        event_id=secrets.token_hex(16), user_id=user.id, occurred_at=at,
                        kind=rng.choice([EventKind.PAGE_VISIT, EventKind.PAGE_VISIT, EventKind.PRODUCT_VIEW])))
            if age > 0 and not bought and rng.random() < 0.3:  # a win-back message, sometimes followed by a visit
                at = _moment(rng, month, now)
                if at is not None:
                    plan.notes.append(Notification(user=user, kind="DEMO_WINBACK", title="We miss you",
                                                   body="New memberships this month.", created_at=at))
                    if rng.random() < 0.6 and at + timedelta(hours=3) < now:
                        plan.events.append(BehaviourEvent(event_id=secrets.token_hex(16), user_id=user.id,
                                                          kind=EventKind.PAGE_VISIT, occurred_at=at + timedelta(hours=3)))
            if not bought:
                continue
            for _ in range(1 if rng.random() < 0.8 else 2):
                at = _moment(rng, month, now)
                if at is None:
                    continue
                pick = rng.randrange(len(products)) if wanderer and rng.random() < 0.5 else favourite
                product = products[pick]
                key = secrets.token_hex(10)
                plan.orders.append(Order(
                    order_no=f"H{at:%Y%m%d}-{key[:10].upper()}", buyer_id=user.id, product_id=product.id,
                    merchant_id=shop_id, quantity=1, unit_price=product.price, total=product.price,
                    status=OrderStatus.COMPLETED, idempotency_scope=f"u:{user.id}", idempotency_key=f"history-{key}",
                    expires_at=at + timedelta(minutes=30), paid_at=at, delivered_at=at + timedelta(minutes=20),
                    completed_at=min(at + timedelta(days=1), now), created_at=at, delivery_seconds=1200, promised_minutes=60,
                ))
    return plan
