"""The verifiable trade log: appending committed trade events, signed heads, and proofs.

Appending runs in one place at a time (a PostgreSQL advisory lock, and a process lock for
the relay and the sweep sharing a loop): it takes pending ``TradeEvent`` rows in id order,
gives each the next index, stores the complete subtrees it closes and deletes the events,
all in one transaction. An event becomes a leaf exactly once: a crashed batch rolls back
whole, and ``TradeLeaf.event_id`` is unique. Proofs and heads read O(log n) stored nodes
(kameng/merkle.py) in one query.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tortoise.transactions import in_transaction

from kameng import merkle
from kameng.settings import get_settings
from models.trust.tradelog import TradeEvent, TradeHead, TradeLeaf, TradeNode
from resolvers.accounts import permissions
from resolvers.accounts.permissions import Action, Caller
from resolvers.errors import invalid

BATCH = 2000
_ADVISORY_LOCK_KEY = 0x6B6D2D6C6F67  # "km-log"
_lock = asyncio.Lock()


@dataclass(frozen=True, slots=True)
class Head:
    tree_size: int
    root_hash: str
    timestamp: str
    signature: str
    public_key: str


@dataclass(frozen=True, slots=True)
class Inclusion:
    leaf_index: int
    tree_size: int
    root_hash: str
    audit_path: list[str]


@dataclass(frozen=True, slots=True)
class Consistency:
    first: int
    second: int
    first_root: str
    second_root: str
    path: list[str]


def head_message(tree_size: int, root_hash: str, timestamp: str) -> bytes:
    """What a tree head's signature covers (issue 14)."""
    return f"kameng-tree-head\n{tree_size}\n{root_hash}\n{timestamp}".encode()


async def append_pending(batch: int = BATCH) -> int:
    """Append every committed pending event; returns how many leaves were added."""
    total = 0
    while True:
        added = await _append_batch(batch)
        total += added
        if added < batch:
            return total


async def _append_batch(batch: int) -> int:
    async with _lock, in_transaction() as connection:
        if not get_settings().is_sqlite:
            await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [_ADVISORY_LOCK_KEY])
        events = await TradeEvent.all().order_by("id").limit(batch)
        if not events:
            return 0
        size = await tree_size()
        wanted = merkle.frontier_keys(size)
        found = await _nodes(set(wanted.values()))
        frontier = {level: found[key] for level, key in wanted.items()}
        nodes: list[TradeNode] = []
        leaves: list[TradeLeaf] = []

        def store(key: int, digest: bytes) -> None:
            nodes.append(TradeNode(key=key, hash=digest))

        for event in events:
            digest = merkle.leaf_hash(event.leaf.encode())
            leaves.append(TradeLeaf(index=size, event_id=event.id, order_id=event.order_id, leaf=event.leaf,
                                    leaf_hash=digest.hex()))
            size = merkle.append(frontier, size, digest, store)
        await TradeLeaf.bulk_create(leaves, batch_size=500)
        await TradeNode.bulk_create(nodes, batch_size=500)
        await TradeEvent.filter(id__in=[event.id for event in events]).delete()
        return len(events)


async def tree_size() -> int:
    last = await TradeLeaf.all().order_by("-index").first().values_list("index", flat=True)
    return 0 if last is None else int(last) + 1


async def _nodes(keys: set[int]) -> dict[int, bytes]:
    if not keys:
        return {}
    return {key: bytes(digest) for key, digest in await TradeNode.filter(key__in=keys).values_list("key", "hash")}


async def _check_size(size: int | None, field: str) -> int:
    current = await tree_size()
    if size is None:
        return current
    if size < 1 or size > current:
        raise invalid(field, f"The trade log has {current} leaves: a tree size is between 1 and that.")
    return size


async def root_hash(size: int) -> bytes:
    if size == 0:
        return merkle.EMPTY_ROOT
    plan = merkle.plan_root(0, size)
    return merkle.evaluate(plan, await _nodes(merkle.needed([plan])))


async def inclusion(index: int, size: int | None = None) -> Inclusion:
    """RFC 9162 2.1.3 audit path of leaf ``index`` in the tree of ``size`` (current if None)."""
    size = await _check_size(size, "treeSize")
    if not 0 <= index < size:
        raise invalid("treeSize", "That leaf is not in a tree of this size.")
    root = merkle.plan_root(0, size)
    path = merkle.plan_inclusion(index, size)
    nodes = await _nodes(merkle.needed([root, *path]))
    return Inclusion(index, size, merkle.evaluate(root, nodes).hex(), [merkle.evaluate(p, nodes).hex() for p in path])


async def consistency(first: int, second: int) -> Consistency:
    """RFC 9162 2.1.4 proof that the tree of ``first`` leaves is a prefix of ``second``'s."""
    second = await _check_size(second, "second")
    if not 1 <= first <= second:
        raise invalid("first", "first is between 1 and second.")
    roots = (merkle.plan_root(0, first), merkle.plan_root(0, second))
    path = merkle.plan_consistency(first, second)
    nodes = await _nodes(merkle.needed([*roots, *path]))
    return Consistency(first, second, merkle.evaluate(roots[0], nodes).hex(), merkle.evaluate(roots[1], nodes).hex(),
                       [merkle.evaluate(p, nodes).hex() for p in path])


def _signing_key() -> Ed25519PrivateKey:
    return _key_from_seed(get_settings().tradelog_key_seed())


@functools.lru_cache(maxsize=4)
def _key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key() -> str:
    raw = _signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


async def current_head() -> Head:
    """The signed head of the tree as it is: the stored one if the tree has not grown since,
    else a new head, signed and stored."""
    size = await tree_size()
    latest = await TradeHead.all().order_by("-id").first()
    if latest is not None and latest.tree_size == size:
        return _head(latest)
    root = (await root_hash(size)).hex()
    timestamp = datetime.now(UTC).replace(microsecond=0).isoformat()
    signature = base64.b64encode(_signing_key().sign(head_message(size, root, timestamp))).decode()
    stored = await TradeHead.create(tree_size=size, root_hash=root, timestamp=timestamp, signature=signature)
    return _head(stored)


def _head(row: TradeHead) -> Head:
    return Head(int(row.tree_size), row.root_hash, row.timestamp, row.signature, public_key())


async def sweep() -> None:
    """Periodic: append what the relay has not yet, then sign and store the head."""
    await append_pending()
    await current_head()


async def records_for_orders(order_ids: list[int]) -> list[list[TradeLeaf]]:
    """Batch load: each order's leaves, oldest first."""
    found: dict[int, list[TradeLeaf]] = {order_id: [] for order_id in order_ids}
    for leaf in await TradeLeaf.filter(order_id__in=order_ids).order_by("index"):
        found[leaf.order_id].append(leaf)
    return [found[order_id] for order_id in order_ids]


def may_read_record(actor: Caller, buyer_id: int | None, merchant_owner_id: int | None) -> bool:
    """An order's trade record is for its buyer, its shop's owner and staff."""
    return permissions.allowed(actor, Action.READ_PRIVATE, owner_id=buyer_id) or permissions.allowed(
        actor, Action.READ_SHOP_PRIVATE, owner_id=merchant_owner_id
    )
