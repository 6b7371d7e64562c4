"""The verifiable trade log in the graph: the signed head, proofs, and an order's leaves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from models.trust.tradelog import TradeLeaf
from resolvers.trust import tradelog


@strawberry.type(
    description="A signed head of the trade log (RFC 9162 Merkle tree of every order transition and ledger "
                "posting). `signature` is Ed25519, base64, over the UTF-8 bytes of "
                "\"kameng-tree-head\\n{treeSize}\\n{rootHash}\\n{timestamp}\" with `timestamp` as returned here."
)
class TreeHead:
    tree_size: int = strawberry.field(description="How many leaves the tree has.")
    root_hash: str = strawberry.field(description="The tree's root hash (RFC 9162 MTH), lowercase hex.")
    timestamp: datetime = strawberry.field(description="When the head was signed (UTC, whole seconds).")
    signature: str = strawberry.field(description="Ed25519 signature of the head message, base64.")
    public_key: str = strawberry.field(description="The Ed25519 public key that verifies it: base64 of its 32 raw bytes.")

    @classmethod
    def from_head(cls, head: tradelog.Head) -> TreeHead:
        return cls(tree_size=head.tree_size, root_hash=head.root_hash, timestamp=datetime.fromisoformat(head.timestamp),
                   signature=head.signature, public_key=head.public_key)


@strawberry.type(description="An RFC 9162 (2.1.3) inclusion proof of one leaf in a tree of a given size.")
class InclusionProof:
    leaf_index: int = strawberry.field(description="The leaf's index (0 is the first leaf).")
    tree_size: int = strawberry.field(description="The size of the tree the proof is for.")
    root_hash: str = strawberry.field(description="That tree's root hash, lowercase hex.")
    audit_path: list[str] = strawberry.field(description="The audit path, nearest the leaf first, lowercase hex.")


@strawberry.type(description="An RFC 9162 (2.1.4) consistency proof: the first tree is a prefix of the second.")
class ConsistencyProof:
    first: int = strawberry.field(description="The size of the earlier tree.")
    second: int = strawberry.field(description="The size of the later tree.")
    first_root: str = strawberry.field(description="The earlier tree's root hash, lowercase hex.")
    second_root: str = strawberry.field(description="The later tree's root hash, lowercase hex.")
    path: list[str] = strawberry.field(description="The consistency proof's hashes, in the RFC's order, lowercase hex.")


@strawberry.type(description="One leaf of the trade log: an order transition or a ledger posting of the order.")
class TradeLogEntry:
    index: int = strawberry.field(description="The leaf's index in the log.")
    leaf: str = strawberry.field(
        description="The leaf bytes as UTF-8 text: canonical JSON (sorted keys, no spaces) naming no person."
    )
    leaf_hash: str = strawberry.field(description="SHA-256(0x00 || leaf bytes), lowercase hex.")

    @strawberry.field(description="Proof that this leaf is in the log: for the current head unless treeSize is given.")
    async def inclusion_proof(
        self,
        tree_size: Annotated[
            int | None, strawberry.argument(description="The tree size to prove against (a head's treeSize); "
                                                        "the current size if null.")
        ] = None,
    ) -> InclusionProof:
        proof = await tradelog.inclusion(self.index, tree_size)
        return InclusionProof(leaf_index=proof.leaf_index, tree_size=proof.tree_size, root_hash=proof.root_hash,
                              audit_path=proof.audit_path)

    @classmethod
    def from_model(cls, leaf: TradeLeaf) -> TradeLogEntry:
        return cls(index=int(leaf.index), leaf=leaf.leaf, leaf_hash=leaf.leaf_hash)


@strawberry.type(description="Queries of the verifiable trade log.")
class TradeLogQueries:
    @strawberry.field(description="The trade log's current signed tree head. Public.")
    async def trade_log_head(self) -> TreeHead:
        return TreeHead.from_head(await tradelog.current_head())

    @strawberry.field(description="Proof that the log at size `first` is a prefix of the log at size `second`. Public.")
    async def trade_log_consistency(
        self,
        first: Annotated[int, strawberry.argument(description="The earlier tree size (at least 1).")],
        second: Annotated[int, strawberry.argument(description="The later tree size (at most the current size).")],
    ) -> ConsistencyProof:
        proof = await tradelog.consistency(first, second)
        return ConsistencyProof(first=proof.first, second=proof.second, first_root=proof.first_root,
                                second_root=proof.second_root, path=proof.path)
