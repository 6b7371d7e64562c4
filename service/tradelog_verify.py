"""`kameng tradelog verify`: check the trade log from the API's answers, trusting none of them.

The client asks for the signed head, an order's leaves with their inclusion proofs, and a
consistency proof from a head it saw before; it checks the signatures with the Ed25519
public key and recomputes every proof itself (RFC 9162 2.1.3.2 and 2.1.4.2, in
kameng/merkle.py). A server that rewrote history cannot answer all of these consistently.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kameng import merkle

HEAD = "{ tradeLogHead { treeSize rootHash timestamp signature publicKey } }"
RECORD = """query($id: ID!, $size: Int) { order(id: $id) { orderNo tradeRecord {
  index leaf leafHash inclusionProof(treeSize: $size) { leafIndex treeSize rootHash auditPath } } } }"""
CONSISTENCY = """query($first: Int!, $second: Int!) { tradeLogConsistency(first: $first, second: $second) {
  first second firstRoot secondRoot path } }"""


@dataclass
class Report:
    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        (self.checked if ok else self.failures).append(what)


def head_signature_ok(head: dict[str, Any], public_key: str | None = None) -> bool:
    """The head's signature verifies with its key (and that key is the pinned one, if given)."""
    if public_key is not None and head["publicKey"] != public_key:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(head["publicKey"]))
        message = f"kameng-tree-head\n{head['treeSize']}\n{head['rootHash']}\n{head['timestamp']}".encode()
        key.verify(base64.b64decode(head["signature"]), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def check_record(report: Report, head: dict[str, Any], record: list[dict[str, Any]]) -> None:
    root = bytes.fromhex(head["rootHash"])
    for entry in record:
        leaf = entry["leaf"].encode()
        proof = entry["inclusionProof"]
        path = [bytes.fromhex(p) for p in proof["auditPath"]]
        report.check(merkle.leaf_hash(leaf).hex() == entry["leafHash"], f"leaf {entry['index']}: hash")
        report.check(
            proof["treeSize"] == head["treeSize"] and proof["leafIndex"] == entry["index"]
            and merkle.verify_inclusion(leaf, entry["index"], head["treeSize"], path, root),
            f"leaf {entry['index']}: included in the head of size {head['treeSize']}",
        )


def check_consistency(report: Report, earlier: dict[str, Any], later: dict[str, Any], proof: dict[str, Any]) -> None:
    ok = (
        (proof["first"], proof["second"]) == (earlier["treeSize"], later["treeSize"])
        and merkle.verify_consistency(
            earlier["treeSize"], later["treeSize"], bytes.fromhex(earlier["rootHash"]),
            bytes.fromhex(later["rootHash"]), [bytes.fromhex(p) for p in proof["path"]],
        )
    )
    report.check(ok, f"head of size {earlier['treeSize']} is a prefix of the head of size {later['treeSize']}")


def _ask(http: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = http.post(str(http.base_url).rstrip("/"), json={"query": query, "variables": variables or {}}).json()
    if body.get("errors"):
        raise ValueError(f"the API refused: {body['errors'][0].get('message')}")
    return body["data"]


def _head_and_order(http: httpx.Client, order_id: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The current head and the order's proofs for it. A leaf of the order appended between
    the two answers has no proof in that head: then ask again for a newer head."""
    for attempt in range(3):
        head = _ask(http, HEAD)["tradeLogHead"]
        if order_id is None:
            return head, None
        try:
            return head, _ask(http, RECORD, {"id": order_id, "size": head["treeSize"]})["order"]
        except ValueError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def verify(
    api: str, *, token: str | None = None, order_id: str | None = None, previous: Path | None = None,
    public_key: str | None = None, save: Path | None = None,
) -> Report:
    report = Report()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=api, headers=headers, timeout=30) as http:
        head, order = _head_and_order(http, order_id)
        report.check(head_signature_ok(head, public_key), f"head of size {head['treeSize']}: signature")
        if previous is not None and previous.exists():
            earlier = json.loads(previous.read_text())
            report.check(head_signature_ok(earlier, public_key), f"earlier head of size {earlier['treeSize']}: signature")
            if earlier["treeSize"] > 0:
                variables = {"first": earlier["treeSize"], "second": head["treeSize"]}
                check_consistency(report, earlier, head, _ask(http, CONSISTENCY, variables)["tradeLogConsistency"])
        if order_id is not None:
            if order is None or order["tradeRecord"] is None:
                report.check(False, "the order's trade record is readable with these credentials")
            else:
                report.check(bool(order["tradeRecord"]), f"order {order['orderNo']} has leaves in the log")
                check_record(report, head, order["tradeRecord"])
    if save is not None and not report.failures:
        save.write_text(json.dumps(head))
    return report
