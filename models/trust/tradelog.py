"""The verifiable trade log (RFC 9162 Merkle tree) and the outbox that feeds it.

A use case writes a ``TradeEvent`` in the transaction of the order transition or ledger
posting it records. The appender (resolvers/trust/tradelog.py) later moves committed events
into ``TradeLeaf`` rows in the order it sees them, storing every complete subtree hash it
completes in ``TradeNode``, so proofs read O(log n) rows. ``TradeHead`` keeps signed heads.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class TradeEvent(Model):
    """A leaf waiting to be appended: written with the state change, deleted when appended."""

    id = fields.BigIntField(primary_key=True)
    order_id = fields.BigIntField(null=True)
    leaf = fields.TextField()

    class Meta:
        table = "trade_event"


class TradeLeaf(Model):
    """An appended leaf. ``event_id`` is unique: an event is appended exactly once."""

    index = fields.BigIntField(primary_key=True, generated=False)
    event_id = fields.BigIntField(unique=True)
    order_id = fields.BigIntField(null=True, db_index=True)
    leaf = fields.TextField()
    leaf_hash = fields.CharField(max_length=64)

    class Meta:
        table = "trade_leaf"


class TradeNode(Model):
    """The hash of a complete aligned subtree, keyed by kameng.merkle.node_key(level, position)."""

    key = fields.BigIntField(primary_key=True, generated=False)
    hash = fields.BinaryField()

    class Meta:
        table = "trade_node"


class TradeHead(Model):
    """A signed tree head. ``timestamp`` is the exact ISO text that was signed."""

    id = fields.BigIntField(primary_key=True)
    tree_size = fields.BigIntField(db_index=True)
    root_hash = fields.CharField(max_length=64)
    timestamp = fields.CharField(max_length=40)
    signature = fields.CharField(max_length=100)

    class Meta:
        table = "trade_head"
