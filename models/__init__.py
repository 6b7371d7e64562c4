"""Tortoise models: the data and the invariants that live with it.

One module per domain; ``MODEL_MODULES`` is what the ORM and the migrations load.
"""

MODEL_MODULES = [
    "models.accounts",
    "models.notifications",
    "models.outbox",
    "models.catalog",
    "models.inventory",
    "models.orders",
    "models.ledger",
    "models.payments",
    "models.community",
    "models.points",
    "models.coupons",
    "models.tasks",
]
