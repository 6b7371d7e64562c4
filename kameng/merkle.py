"""RFC 9162 section 2.1 Merkle trees, over stored complete subtrees.

The trade log stores the hash of every complete, aligned subtree (a node covering leaves
``[pos * 2**level, (pos + 1) * 2**level)``). Every subtree the RFC's recursion visits is
aligned, so any tree head, audit path or consistency proof is a handful of stored nodes
combined: a *plan* names them (``needed``), one read fetches them, ``evaluate`` combines.
That keeps a proof at O(log n) stored hashes whatever the tree size.

The verifiers at the bottom are the RFC's own algorithms (2.1.3.2, 2.1.4.2), used by the
``kameng tradelog verify`` command on what the API answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def node_key(level: int, position: int) -> int:
    """One integer per stored node (levels < 64, positions < 2**48)."""
    return (level << 48) | position


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True, slots=True)
class Join:
    left: Plan
    right: Plan


Plan = int | Join  # a stored node's key, or two plans hashed together


def plan_root(start: int, size: int) -> Plan:
    """MTH(D[start:start+size]) for a subtree the RFC's recursion can reach (size >= 1)."""
    if size & (size - 1) == 0:
        level = size.bit_length() - 1
        return node_key(level, start >> level)
    k = _split(size)
    return Join(plan_root(start, k), plan_root(start + k, size - k))


def plan_inclusion(index: int, size: int) -> list[Plan]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, nearest the leaf first."""
    path: list[Plan] = []
    start = 0
    while size > 1:
        k = _split(size)
        if index < k:
            path.append(plan_root(start + k, size - k))
            size = k
        else:
            path.append(plan_root(start, k))
            start, index, size = start + k, index - k, size - k
    path.reverse()
    return path


def plan_consistency(first: int, second: int) -> list[Plan]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1 (0 < m <= n), in the RFC's order."""
    path: list[Plan] = []
    start, m, n, whole = 0, first, second, True
    while m != n:
        k = _split(n)
        if m <= k:
            path.append(plan_root(start + k, n - k))
            n = k
        else:
            path.append(plan_root(start, k))
            start, m, n, whole = start + k, m - k, n - k, False
    if not whole:
        path.append(plan_root(start, m))
    path.reverse()
    return path


def needed(plans: Sequence[Plan]) -> set[int]:
    keys: set[int] = set()
    stack = list(plans)
    while stack:
        plan = stack.pop()
        if isinstance(plan, Join):
            stack += (plan.left, plan.right)
        else:
            keys.add(plan)
    return keys


def evaluate(plan: Plan, nodes: Mapping[int, bytes]) -> bytes:
    if isinstance(plan, Join):
        return node_hash(evaluate(plan.left, nodes), evaluate(plan.right, nodes))
    return nodes[plan]


def append(
    frontier: dict[int, bytes], size: int, hashed_leaf: bytes, store: Callable[[int, bytes], None]
) -> int:
    """Add one leaf to a tree of ``size`` leaves. ``frontier[level]`` holds the rightmost
    complete node of each level (the ones a later leaf still combines with); every node the
    leaf completes is handed to ``store``. Returns the new size."""
    level, position, current = 0, size, hashed_leaf
    store(node_key(0, position), current)
    while position & 1:
        current = node_hash(frontier[level], current)
        level, position = level + 1, position >> 1
        store(node_key(level, position), current)
    frontier[level] = current
    return size + 1


def frontier_keys(size: int) -> dict[int, int]:
    """{level: key} of the stored nodes ``append`` needs to continue a tree of ``size``."""
    return {level: node_key(level, (size >> level) - 1) for level in range(size.bit_length()) if size >> level & 1}


# -- verification (RFC 9162 2.1.3.2 and 2.1.4.2), for clients of the log --


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]) -> bool:
    if first == second:
        return not path and first_root == second_root
    if first == 0 or first > second:
        return False
    proof = list(path)
    if first & (first - 1) == 0:  # a power of two: first_root is the first node
        proof.insert(0, first_root)
    if not proof:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root
