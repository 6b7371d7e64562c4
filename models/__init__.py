"""Tortoise models: the data and the invariants that live with it.

One module per domain; ``MODEL_MODULES`` is what the ORM and the migrations load.
"""

MODEL_MODULES = [
    "models.accounts.users",
    "models.accounts.notifications",
    "models.outbox",
    "models.commerce.merchants",
    "models.commerce.catalog",
    "models.commerce.inventory",
    "models.commerce.orders",
    "models.commerce.ledger",
    "models.commerce.payments",
    "models.community.posts",
    "models.community.topics",
    "models.community.comments",
    "models.community.reactions",
    "models.community.follows",
    "models.community.moderation",
    "models.loyalty.points",
    "models.loyalty.coupons",
    "models.loyalty.tasks",
    "models.trust.promises",
    "models.trust.tradelog",
    "models.discovery.events",
    "models.repurchase.plans",
    "models.repurchase.reminders",
    "models.repurchase.birthdays",
]
