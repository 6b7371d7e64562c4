"""`kameng seed --demo`: a small demo shop and community, made through the use cases, and
months of history behind it (service/seed_history.py) for the retention report.

Everything goes through the same functions the API calls (validation, ledger, outbox), so
the demo data is data the product itself could have made. Running it twice changes nothing.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from decimal import Decimal

from service import wiring
from service.seed_history import build_history
from service.seed_campaigns import build_campaign_history
from kameng.settings import Settings
from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind
from models.community.posts import PostKind
from models.commerce.orders import OrderStatus
from models.commerce.payments import PaymentMethod
from resolvers.accounts import users as accounts
from resolvers.commerce import catalog, delivery, inventory, ledger, merchants, orders, payments
from resolvers.community import comments, posts
from resolvers.accounts.auth import Actor

DEMO_DOMAIN = "demo.example.com"


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    role: Role


async def seed_demo(settings: Settings) -> list[DemoAccount] | None:
    """Create the demo; None if it exists already."""
    # On the embedded default no broker outlives this command: the outbox rows the demo
    # writes stay pending, and `kameng serve` sends them when it starts.
    await wiring.start(
        settings, apply_migrations=settings.is_sqlite, run_worker=False, sweeps=False, relay=not settings.embedded
    )
    try:
        if await User.filter(email=f"admin@{DEMO_DOMAIN}").exists():
            return None
        return await _build()
    finally:
        await wiring.stop()


async def _user(role: Role, name: str) -> tuple[User, DemoAccount]:
    password = secrets.token_urlsafe(9)
    email = f"{name.lower()}@{DEMO_DOMAIN}"
    user = await accounts.create_user(email, password, name, role)
    return user, DemoAccount(email, password, role)


async def _build() -> list[DemoAccount]:
    admin, admin_login = await _user(Role.ADMIN, "Admin")
    owner, owner_login = await _user(Role.MERCHANT, "Merchant")
    buyer, buyer_login = await _user(Role.BUYER, "Buyer")
    staff, as_owner, as_buyer = Actor(user=admin), Actor(user=owner), Actor(user=buyer)

    games = await merchants.create_category(staff, name="Game cards", slug="game-cards")
    shop = await merchants.create_merchant(as_owner, name="Demo Card Shop", description="Game cards, delivered in seconds.")
    card = await catalog.create_product(as_owner, shop.id, catalog.ProductFields(
        title="Steam Wallet 50", description="A CNY 50 Steam wallet code.", price="48.00",
        delivery_kind=DeliveryKind.CARD_KEY, category_id=games.id,
        wholesale_tiers=[{"minQuantity": 5, "unitPrice": "46.50"}], delivery_promise_minutes=1,
    ))
    await inventory.import_card_keys(as_owner, card.id, [f"DEMO-{uuid.uuid4().hex[:16].upper()}" for _ in range(20)])
    await catalog.create_product(as_owner, shop.id, catalog.ProductFields(
        title="Game account top-up 100", description="Straight to your game account.", price="98.00",
        delivery_kind=DeliveryKind.DIRECT_TOPUP, category_id=games.id, stock_limit=100,
    ))
    await catalog.create_product(as_owner, shop.id, catalog.ProductFields(
        title="Membership, 1 month (manual)", description="Activated by the shop within an hour.",
        price="15.00", delivery_kind=DeliveryKind.MANUAL, delivery_promise_minutes=60,
    ))

    # The buyer's wallet is topped up by staff, then a key is bought and delivered.
    await ledger.post("demo.topup", str(buyer.id), [(ledger.ADJUSTMENTS, Decimal("-200.00")),
                                                     (ledger.wallet(buyer.id), Decimal("200.00"))])
    order = await orders.create_order(as_buyer, orders.NewOrder(card.id, 1, f"demo-order-{buyer.id}"))
    await payments.pay_order(as_buyer, order.id, PaymentMethod.WALLET)
    await delivery.deliver_order(order.id)  # the job's use case, run here so the demo is complete
    delivered = await orders.visible_order(as_buyer, order.id)
    assert delivered is not None and delivered.status == OrderStatus.DELIVERED

    await posts.create_post(as_buyer, posts.NewPost(
        kind=PostKind.SHOWCASE, title="Got my Steam code in seconds", body="Paid from the wallet, key arrived at once.",
        order_id=order.id, topics=["steam"],
    ))
    review = await posts.create_post(as_buyer, posts.NewPost(
        kind=PostKind.REVIEW, title="Fast and genuine", body="The code worked on the first try.",
        product_id=card.id, rating=5, topics=["steam"],
    ))
    await comments.add_comment(as_owner, review.id, "Thanks for buying, enjoy!")
    # Months of the shop's past sales, visits and win-back messages for the retention report.
    await build_history(staff, owner, shop.id)
    # Segment sizes over those months, a past win-back campaign and answered surveys (issue 12 item 3).
    await build_campaign_history(admin.id)
    return [admin_login, owner_login, buyer_login]
