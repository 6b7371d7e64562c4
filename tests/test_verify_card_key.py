"""Key verification (卡密二次验证): a sold key answers for its buyer with the order and for a
stranger without it; unsold stock and random strings answer alike as unknown; calls are
rate-limited per user and per address; the secret never reaches a log. And the buyer's
audit of their own key reveals."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from models.accounts.users import Role
from tests.conftest import Client, Stack, eventually
from tests.factories import add_keys, make_merchant, make_product, make_user, token_for
from tests.test_delivery import ORDER, buy, buyer_client, delivered, gid, pk

VERIFY = """mutation($input: VerifyCardKeyInput!) { verifyCardKey(input: $input) {
  errors { code field } verdict order { id orderNo } } }"""
REVEALS = """query($id: ID!) { order(id: $id) { cardKeyReveals { keyNumber byBuyer ip at } } }"""


async def verify(client: Client, secret: str, **extra: Any) -> dict[str, Any]:
    return (await client.gql(VERIFY, {"input": {"secret": secret, **extra}}))["verifyCardKey"]


async def signed_in(make_client, role: Role = Role.BUYER) -> Client:  # type: ignore[no-untyped-def]
    client = make_client()
    client.token = await token_for(await make_user(role))
    return client


async def sold_key(make_client) -> tuple[Client, str, str, list[str], Any]:  # type: ignore[no-untyped-def]
    """A buyer, the order they bought one key with (delivered), the key, the product's two
    unsold keys, and the product."""
    product = await make_product(await make_merchant(await make_user(Role.MERCHANT)), price="5.00")
    secrets = await add_keys(product, 3)  # sold oldest first: secrets[0] goes to the order
    buyer, _ = await buyer_client(make_client)
    order_id = (await buy(buyer, product.id))["order"]["id"]
    await eventually(lambda: delivered(pk(order_id)))
    return buyer, order_id, secrets[0], secrets[1:], product


async def test_sold_key_answers_its_buyer_with_the_order_and_a_stranger_without(make_client) -> None:  # type: ignore[no-untyped-def]
    buyer, order_id, secret, _, product = await sold_key(make_client)
    mine = await verify(buyer, f"  {secret}\n")  # trimmed like an import
    assert mine == {"errors": [], "verdict": "SOLD_AND_DELIVERED", "order": {"id": order_id, "orderNo": mine["order"]["orderNo"]}}
    narrowed = await verify(buyer, secret, productId=gid("Product", product.id))
    assert narrowed["verdict"] == "SOLD_AND_DELIVERED" and narrowed["order"]["id"] == order_id

    stranger = await signed_in(make_client)
    assert await verify(stranger, secret) == {"errors": [], "verdict": "SOLD_AND_DELIVERED", "order": None}
    anonymous = make_client()
    assert await verify(anonymous, secret) == {"errors": [], "verdict": "SOLD_AND_DELIVERED", "order": None}
    merchant = await signed_in(make_client, Role.ADMIN)  # not even staff learn the order here
    assert (await verify(merchant, secret))["order"] is None


async def test_unsold_stock_and_random_strings_are_unknown(make_client) -> None:  # type: ignore[no-untyped-def]
    buyer, _, _, unsold, product = await sold_key(make_client)
    owner = make_client()
    owner.token = await token_for(await (await product.merchant).owner)
    unknown = {"errors": [], "verdict": "NEVER_SOLD_BY_US", "order": None}
    for caller in (buyer, owner):  # the shop's own owner cannot probe its stock this way either
        assert await verify(caller, unsold[0]) == unknown
        assert await verify(caller, unsold[1], productId=gid("Product", product.id)) == unknown
        assert await verify(caller, f"KEY-{uuid.uuid4().hex}") == unknown
    # A sold key asked about within another product is not that product's.
    other = await make_product(price="5.00")
    assert await verify(buyer, unsold[0], productId=gid("Product", other.id)) == unknown


async def test_bad_input_is_refused(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await signed_in(make_client)
    for secret, field in (("   ", "secret"), ("x" * 501, "secret"), ("a\x01b", "secret")):
        answer = await verify(client, secret)
        assert answer["verdict"] is None and [(e["code"], e["field"]) for e in answer["errors"]] == [("INVALID_INPUT", field)]
    answer = await verify(client, "KEY", productId="nonsense")
    assert answer["verdict"] is None and answer["errors"][0]["code"] == "INVALID_INPUT"


async def test_rate_limited_per_user_and_per_address(stack: Stack, make_client) -> None:  # type: ignore[no-untyped-def]
    per_user = int(stack.settings.card_key_verify_limit_per_user.split("/")[0])
    per_ip = int(stack.settings.card_key_verify_limit_per_ip.split("/")[0])
    user = await make_user()
    token = await token_for(user)
    # Per user: the same account from a new address each time is still refused past its limit.
    answers = []
    for n in range(per_user + 1):
        client = make_client()
        client.ip = f"198.51.100.{n + 1}"
        client.token = token
        answers.append(await verify(client, f"KEY-{uuid.uuid4().hex}"))
    assert [a["verdict"] for a in answers[:per_user]] == ["NEVER_SOLD_BY_US"] * per_user
    assert answers[-1] == {"errors": [{"code": "RATE_LIMITED", "field": None}], "verdict": None, "order": None}
    # Per address: guests (no user to count) from one address.
    guest = make_client()
    guest.ip = f"192.0.2.{uuid.uuid4().int % 250 + 1}"
    verdicts = [(await verify(guest, f"KEY-{uuid.uuid4().hex}"))["verdict"] for _ in range(per_ip + 1)]
    assert verdicts == ["NEVER_SOLD_BY_US"] * per_ip + [None]
    # Another caller at another address is not held up by either.
    assert (await verify(await signed_in(make_client), "KEY-elsewhere"))["verdict"] == "NEVER_SOLD_BY_US"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.getMessage()} {record.msg!r} {record.args!r} {record.__dict__!r}")


@contextlib.contextmanager
def every_log_record() -> Iterator[_Records]:
    """Every logger at DEBUG (SQL statements with their parameters included) for the block."""
    root = logging.getLogger()
    names = ["tortoise", "tortoise.db_client", "kameng", "kameng.graphql", "kameng.http", "uvicorn", "strawberry"]
    loggers = [root] + [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    records = _Records()
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    root.addHandler(records)
    try:
        yield records
    finally:
        root.removeHandler(records)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


async def test_the_secret_never_reaches_a_log(make_client) -> None:  # type: ignore[no-untyped-def]
    buyer, _, secret, unsold, _ = await sold_key(make_client)
    random_key = f"KEY-{uuid.uuid4().hex}"
    with every_log_record() as records:
        for key in (secret, unsold[0], random_key):
            assert (await verify(buyer, key))["errors"] == []
        await verify(buyer, "x" * 501)  # refused input is not logged either
    assert any("card_key" in text for text in records.texts)  # the capture did see the lookups
    for key in (secret, unsold[0], random_key, "x" * 501):
        assert not any(key in text for text in records.texts)


async def test_the_buyer_reads_the_audit_of_their_key_reveals(make_client) -> None:  # type: ignore[no-untyped-def]
    buyer, order_id, _, _, product = await sold_key(make_client)
    assert (await buyer.gql(REVEALS, {"id": order_id}))["order"]["cardKeyReveals"] == []
    for _ in range(2):
        assert len((await buyer.gql(ORDER, {"id": order_id}))["order"]["cardKeys"]) == 1
    reveals = (await buyer.gql(REVEALS, {"id": order_id}))["order"]["cardKeyReveals"]
    assert [(r["keyNumber"], r["byBuyer"], r["ip"]) for r in reveals] == [(1, True, buyer.ip)] * 2
    assert reveals[0]["at"] <= reveals[1]["at"]
    owner = make_client()
    owner.token = await token_for(await (await product.merchant).owner)
    assert (await owner.gql(REVEALS, {"id": order_id}))["order"]["cardKeyReveals"] == []  # the shop: not theirs
    staff = await signed_in(make_client, Role.ADMIN)
    assert len((await staff.gql(REVEALS, {"id": order_id}))["order"]["cardKeyReveals"]) == 2
