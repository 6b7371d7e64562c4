"""The verifiable trade log (issue 14, item 7), checked against RFC 9162 from the outside.

Everything the API answers is verified with a second implementation written straight from
RFC 9162 (tests/rfc9162.py: MTH, PATH and PROOF of section 2.1 and the verification
algorithms of 2.1.3.2 and 2.1.4.2), which shares no code with kameng/merkle.py. The
Certificate Transparency reference leaves and roots pin both implementations.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kameng import merkle
from models.accounts.users import Role
from models.commerce.orders import Order, OrderStatus
from models.trust.tradelog import TradeEvent, TradeLeaf
from resolvers.commerce import ledger, orders
from resolvers.trust import tradelog
from subscriptions import outbox
from tests.conftest import Client, Stack, eventually
from tests.factories import fund
from tests.rfc9162 import CT_LEAVES, CT_ROOTS, mth, rfc_leaf, rfc_path, rfc_subproof, rfc_verify_consistency, rfc_verify_inclusion
from tests.test_orders import gid
from tests.test_payments import new_order, pay, signed_in


def test_the_reference_implementation_reproduces_the_ct_vectors() -> None:
    assert mth([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert [mth(CT_LEAVES[:n]).hex() for n in range(1, 9)] == CT_ROOTS


class StoredTree:
    """kameng.merkle over a dict, as the trade log uses it over TradeNode rows."""

    def __init__(self) -> None:
        self.nodes: dict[int, bytes] = {}
        self.frontier: dict[int, bytes] = {}
        self.size = 0

    def add(self, leaf: bytes) -> None:
        assert {k: self.nodes[v] for k, v in merkle.frontier_keys(self.size).items()} == {
            k: self.frontier[k] for k in merkle.frontier_keys(self.size)
        }
        self.size = merkle.append(self.frontier, self.size, merkle.leaf_hash(leaf), self.nodes.__setitem__)

    def root(self, size: int) -> bytes:
        return merkle.evaluate(merkle.plan_root(0, size), self.nodes)

    def path(self, index: int, size: int) -> list[bytes]:
        return [merkle.evaluate(p, self.nodes) for p in merkle.plan_inclusion(index, size)]

    def proof(self, first: int, second: int) -> list[bytes]:
        return [merkle.evaluate(p, self.nodes) for p in merkle.plan_consistency(first, second)]


def test_stored_subtrees_give_the_rfc_roots_paths_and_proofs() -> None:
    leaves = CT_LEAVES + [f"leaf {i}".encode() for i in range(8, 40)]
    tree = StoredTree()
    for leaf in leaves:
        tree.add(leaf)
    assert [tree.root(n).hex() for n in range(1, 9)] == CT_ROOTS
    for n in range(1, len(leaves) + 1):
        root = mth(leaves[:n])
        assert tree.root(n) == root
        for m in range(n):
            path = tree.path(m, n)
            assert path == rfc_path(m, leaves[:n])
            assert rfc_verify_inclusion(leaves[m], m, n, path, root)
            assert not rfc_verify_inclusion(leaves[m] + b"!", m, n, path, root)
            assert merkle.verify_inclusion(leaves[m], m, n, path, root)
        for m in range(1, n + 1):
            proof = tree.proof(m, n)
            assert proof == rfc_subproof(m, leaves[:n], True)
            assert rfc_verify_consistency(m, n, mth(leaves[:m]), root, proof)
            assert merkle.verify_consistency(m, n, mth(leaves[:m]), root, proof)
            altered = [*leaves[: m - 1], b"altered", *leaves[m:n]]
            assert not rfc_verify_consistency(m, n, mth(leaves[:m]), mth(altered), proof)


def test_a_proof_reads_logarithmically_many_stored_nodes() -> None:
    size = 1_000_003
    for index in (0, size // 2, size - 1):
        plans = [merkle.plan_root(0, size), *merkle.plan_inclusion(index, size)]
        assert len(merkle.needed(plans)) <= 3 * size.bit_length()
    plans = [merkle.plan_root(0, 777_777), merkle.plan_root(0, size), *merkle.plan_consistency(777_777, size)]
    assert len(merkle.needed(plans)) <= 4 * size.bit_length()


# -- the log behind the API ---------------------------------------------------------------

HEAD = "{ tradeLogHead { treeSize rootHash timestamp signature publicKey } }"
RECORD = """query($id: ID!, $size: Int) { order(id: $id) { orderNo tradeRecord {
  index leaf leafHash inclusionProof(treeSize: $size) { leafIndex treeSize rootHash auditPath } } } }"""
CONSISTENCY = """query($first: Int!, $second: Int!) { tradeLogConsistency(first: $first, second: $second) {
  first second firstRoot secondRoot path } }"""
ERRORS = "{ tradeLogConsistency(first: 0, second: 1) { path } }"


def unhex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


async def all_leaves() -> list[bytes]:
    rows = await TradeLeaf.all().order_by("index").values_list("index", "leaf")
    assert [index for index, _ in rows] == list(range(len(rows))), "leaf indexes have gaps"
    return [leaf.encode() for _, leaf in rows]


def check_head(head: dict) -> None:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(head["publicKey"]))
    message = f"kameng-tree-head\n{head['treeSize']}\n{head['rootHash']}\n{head['timestamp']}".encode()
    key.verify(base64.b64decode(head["signature"]), message)
    forged = f"kameng-tree-head\n{head['treeSize'] + 1}\n{head['rootHash']}\n{head['timestamp']}".encode()
    try:
        key.verify(base64.b64decode(head["signature"]), forged)
    except InvalidSignature:
        return
    raise AssertionError("the signature also covers another tree size")


async def test_an_order_s_record_verifies_against_signed_heads(rt, make_client, client: Client) -> None:  # type: ignore[no-untyped-def]
    buyer_client, buyer = await signed_in(make_client)
    await fund(buyer, "30.00")
    await tradelog.append_pending()
    first = (await client.gql(HEAD))["tradeLogHead"]
    check_head(first)

    order = await new_order(buyer)
    assert (await pay(buyer_client, order, "WALLET"))["errors"] == []
    # Let delivery finish, so that the head signed next covers every leaf of the order.
    await eventually(lambda: Order.filter(id=order.id, status=OrderStatus.DELIVERED).exists())

    async def delivered_leaf() -> bool:
        await rt.relay.drain()
        return await TradeLeaf.filter(order_id=order.id, leaf__contains='"DELIVERED"').exists()

    await eventually(delivered_leaf)
    second = (await client.gql(HEAD))["tradeLogHead"]
    check_head(second)
    assert second["treeSize"] > first["treeSize"]

    # The whole log, rebuilt by the RFC's definition, has the signed root.
    leaves = await all_leaves()
    assert mth(leaves[: second["treeSize"]]).hex() == second["rootHash"]
    assert mth(leaves[: first["treeSize"]]).hex() == first["rootHash"]

    data = await buyer_client.gql(RECORD, {"id": gid("Order", order.id), "size": second["treeSize"]})
    record = data["order"]["tradeRecord"]
    kinds = [(json.loads(e["leaf"])["event"], json.loads(e["leaf"]).get("status") or json.loads(e["leaf"])["reason"])
             for e in record]
    assert [k for k in kinds if k[0] == "order"] == [("order", s) for s in ("PENDING_PAYMENT", "PAID", "DELIVERING", "DELIVERED")]
    assert ("posting", "order.pay") in kinds
    for entry in record:
        leaf = entry["leaf"].encode()
        document = json.loads(entry["leaf"])
        assert entry["leaf"] == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert document["order"] == data["order"]["orderNo"]
        # Nothing that names a person: fixed fields, legs by account kind only.
        assert set(document) <= {"event", "order", "status", "posting", "reason", "amount", "currency", "legs", "at"}
        assert all(kind.isalpha() for kind, _ in document.get("legs", []))
        assert buyer.email not in entry["leaf"] and buyer.nickname not in entry["leaf"]
        assert entry["leafHash"] == rfc_leaf(leaf).hex()
        proof = entry["inclusionProof"]
        assert proof["treeSize"] == second["treeSize"] and proof["rootHash"] == second["rootHash"]
        assert rfc_verify_inclusion(leaf, entry["index"], proof["treeSize"], unhex(proof["auditPath"]),
                                    bytes.fromhex(second["rootHash"]))
        altered = leaf.replace(b"order", b"0rder", 1)
        assert not rfc_verify_inclusion(altered, entry["index"], proof["treeSize"], unhex(proof["auditPath"]),
                                        bytes.fromhex(second["rootHash"]))

    if first["treeSize"] > 0:
        proof = (await client.gql(CONSISTENCY, {"first": first["treeSize"], "second": second["treeSize"]}))
        proof = proof["tradeLogConsistency"]
        assert (proof["firstRoot"], proof["secondRoot"]) == (first["rootHash"], second["rootHash"])
        assert rfc_verify_consistency(first["treeSize"], second["treeSize"], bytes.fromhex(first["rootHash"]),
                                      bytes.fromhex(second["rootHash"]), unhex(proof["path"]))
        assert not rfc_verify_consistency(first["treeSize"], second["treeSize"], rfc_leaf(b"forged"),
                                          bytes.fromhex(second["rootHash"]), unhex(proof["path"]))

    # Every consistency proof between sizes the log has had verifies.
    size = second["treeSize"]
    for m in sorted({1, 2, 3, size // 2 or 1, size - 1 or 1, size}):
        proof = (await client.gql(CONSISTENCY, {"first": m, "second": size}))["tradeLogConsistency"]
        assert rfc_verify_consistency(m, size, mth(leaves[:m]), mth(leaves[:size]), unhex(proof["path"]))

    # The buyer, the merchant and staff read the record; a stranger does not.
    stranger, _ = await signed_in(make_client)
    assert (await stranger.gql(RECORD, {"id": gid("Order", order.id)}))["order"] is None
    staff, _ = await signed_in(make_client, Role.ADMIN)
    seen = (await staff.gql(RECORD, {"id": gid("Order", order.id)}))["order"]["tradeRecord"]
    assert [e["index"] for e in seen] == [e["index"] for e in record]


async def test_bad_sizes_are_user_errors(client: Client) -> None:
    response = await client.post(ERRORS)
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_appending_is_exactly_once_under_reruns(stack: Stack) -> None:
    await tradelog.append_pending()
    before = await tradelog.tree_size()
    async with outbox.atomic():
        for i in range(25):
            await outbox.trade({"event": "test", "n": i, "run": uuid.uuid4().hex})
    # Two appenders at once (the relay's and the sweep's), then a third: each event once.
    await asyncio.gather(tradelog.append_pending(batch=7), tradelog.append_pending(batch=7))
    await tradelog.append_pending()
    assert await TradeEvent.filter(leaf__contains='"event":"test"').count() == 0
    leaves = await all_leaves()
    tests = [json.loads(leaf) for leaf in leaves[before:] if json.loads(leaf)["event"] == "test"]
    assert [t["n"] for t in tests] == list(range(25))
    assert len({leaf.event_id for leaf in await TradeLeaf.all()}) == len(leaves)
    head = await tradelog.current_head()
    assert head.root_hash == mth((await all_leaves())[: head.tree_size]).hex()


async def test_a_rolled_back_transition_leaves_no_leaf(stack: Stack) -> None:
    order = await new_order(None)
    leaves: list[str] = []
    try:
        async with outbox.atomic():
            assert await orders.transition(order, OrderStatus.CANCELLED, note="test")
            await ledger.post("test.rollback", uuid.uuid4().hex, [(ledger.ADJUSTMENTS, -1), (ledger.PLATFORM_FEES, 1)])
            writes = outbox.current()  # the leaves wait to be written with the block's commit
            assert writes is not None and len(writes.trades) == 2
            leaves = [trade.leaf for trade in writes.trades]
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    # This block's own leaves, not a count of the table: the stack's relay appends (and so
    # deletes) other tests' pending events meanwhile, which made a count flaky in CI.
    await tradelog.append_pending()
    assert await TradeEvent.filter(leaf__in=leaves).count() == 0
    assert await TradeLeaf.filter(leaf__in=leaves).count() == 0
    assert (await Order.get(id=order.id)).status != OrderStatus.CANCELLED


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", "tradelog", "verify", *args], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)


async def test_the_verify_command_checks_an_order_and_the_growth_between_heads(  # type: ignore[no-untyped-def]
    stack: Stack, rt, make_client, client: Client, tmp_path: Path
) -> None:
    buyer_client, buyer = await signed_in(make_client)
    await fund(buyer, "20.00")
    order = await new_order(buyer)
    await rt.relay.drain()
    saved = tmp_path / "head.json"
    api = f"{stack.url}/graphql"
    first = await asyncio.to_thread(run_cli, "--api", api, "--save", str(saved))
    assert first.returncode == 0, first.stderr
    assert "FAIL" not in first.stdout and "signature" in first.stdout

    assert (await pay(buyer_client, order, "WALLET"))["errors"] == []

    async def delivered_leaf() -> bool:
        await rt.relay.drain()
        return await TradeLeaf.filter(order_id=order.id, leaf__contains='"DELIVERED"').exists()

    await eventually(delivered_leaf)
    key = (await client.gql(HEAD))["tradeLogHead"]["publicKey"]
    args = ["--api", api, "--order", gid("Order", order.id), "--token", buyer_client.token, "--previous", str(saved),
            "--public-key", key]
    done = await asyncio.to_thread(run_cli, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a prefix of the head" in done.stdout and "included in the head" in done.stdout

    # A forged earlier head (another root at the same size) is caught.
    forged = json.loads(saved.read_text())
    forged["rootHash"] = "00" * 32
    saved.write_text(json.dumps(forged))
    done = await asyncio.to_thread(run_cli, *args)
    assert done.returncode == 1 and "FAIL" in done.stderr


async def test_a_batch_that_fails_midway_appends_nothing_and_the_rerun_appends_once(stack: Stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from models.trust.tradelog import TradeNode

    real = TradeNode.bulk_create

    async def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("the database went away after the leaves were written")

    monkeypatch.setattr(TradeNode, "bulk_create", crash)
    # Outside atomic(): the relay is not woken, so only this test appends.
    for i in range(5):
        await outbox.trade({"event": "test-crash", "n": i})
    try:
        await tradelog.append_pending()
    except ConnectionError:
        pass
    else:
        raise AssertionError("the append did not reach the failing step")
    # Its own leaves, not the tree's size: the stack's workers append other tests' events meanwhile.
    assert await TradeLeaf.filter(leaf__contains='"test-crash"').count() == 0
    assert await TradeEvent.filter(leaf__contains='"test-crash"').count() == 5
    monkeypatch.setattr(TradeNode, "bulk_create", real)
    await tradelog.append_pending()  # the relay's timer may get there first: either way, once
    await tradelog.append_pending()
    assert await TradeEvent.filter(leaf__contains='"test-crash"').count() == 0
    leaves = await all_leaves()
    crashed = [json.loads(x)["n"] for x in leaves if json.loads(x)["event"] == "test-crash"]
    assert crashed == list(range(5))
    head = await tradelog.current_head()
    assert head.root_hash == mth((await all_leaves())[: head.tree_size]).hex()
