"""Double-entry ledger: every posting's entries sum to zero, per currency.

Accounts are named by code: ``wallet:<user>``, ``merchant:<id>``, ``deposit:<merchant>``,
``escrow``, ``platform:fees``, ``platform:adjustments``, ``gateway:<provider>``. The
balance cached on an account is updated in the same transaction as its entries and is
checked against the sum of entries in tests.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Account(Model):
    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    currency = fields.CharField(max_length=3, default="CNY")
    # User-held accounts may not go below zero; system accounts (gateway, adjustments) may.
    allow_negative = fields.BooleanField(default=False)
    balance = fields.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        table = "ledger_account"


class Posting(Model):
    """One balanced movement of money, unique per (reason, reference): replays post nothing."""

    id = fields.BigIntField(primary_key=True)
    reason = fields.CharField(max_length=40)
    reference = fields.CharField(max_length=120)
    memo = fields.CharField(max_length=300, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ledger_posting"
        unique_together = (("reason", "reference"),)


class Entry(Model):
    id = fields.BigIntField(primary_key=True)
    posting: fields.ForeignKeyRelation[Posting] = fields.ForeignKeyField(
        "kameng.Posting", related_name="entries", on_delete=fields.RESTRICT
    )
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "kameng.Account", related_name="entries", on_delete=fields.RESTRICT
    )
    amount = fields.DecimalField(max_digits=14, decimal_places=2)  # + into the account, - out of it

    class Meta:
        table = "ledger_entry"
        indexes = (("account_id", "id"),)
