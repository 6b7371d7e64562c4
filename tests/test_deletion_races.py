"""An account deletion and an order of the same account at the same moment.

A request is authenticated before its transaction begins. Before createOrder share-locked the
buyer's row in its transaction (users.still_active), either order of events could leave an
erased account holding an order that reserved stock: the deletion checked for orders in
flight before the order committed, or the order began once the deletion had committed. Each
test pauses one side inside its transaction and lets the other start. Both failed on
PostgreSQL before (the order was made during the erasure; the deletion erased the account
while its order was being made). On SQLite, which runs one transaction at a time, they pass
either way: there the window is between the request's authentication and its transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from strawberry.relay import GlobalID

from models.accounts.users import User
from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.orders import Order
from resolvers.accounts import privacy
from resolvers.commerce import inventory
from tests.conftest import Client
from tests.factories import make_product

DELETE = """mutation($input: DeleteMyAccountInput!) { deleteMyAccount(input: $input) {
  errors { code message } deleted } }"""
CREATE = """mutation($input: CreateOrderInput!) { createOrder(input: $input) { errors { code } order { id } } }"""


@contextlib.asynccontextmanager
async def released(finish: asyncio.Event, *tasks: asyncio.Task[Any]) -> AsyncIterator[None]:
    """Lets the paused side go on and waits for both, also when an assertion failed meanwhile:
    a transaction left paused would hold its locks through the fixtures' teardown."""
    try:
        yield
    finally:
        finish.set()
        await asyncio.wait(tasks, timeout=30)


def order_input(product_id: int) -> dict[str, Any]:
    return {"input": {"productId": str(GlobalID("Product", str(product_id))), "idempotencyKey": uuid.uuid4().hex}}


async def test_an_order_begun_during_a_deletion_is_refused(make_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The deletion has checked that nothing is in flight and is erasing; an order authenticated
    by then (its session not yet revoked) waits for it, then finds the account gone."""
    client: Client = make_client()
    me = await client.register(nickname="Leaving")
    user_id = int(GlobalID.from_id(me["user"]["id"]).node_id)
    product = await make_product(keys=2)
    erasing, finish = asyncio.Event(), asyncio.Event()
    erase = privacy._erase

    async def paused_erase(who: int) -> None:
        erasing.set()
        await finish.wait()
        await erase(who)

    monkeypatch.setattr(privacy, "_erase", paused_erase)
    deleting = asyncio.create_task(client.gql(DELETE, {"input": {"password": me["password"]}}))
    await erasing.wait()
    ordering = asyncio.create_task(client.post(CREATE, order_input(product.id)))
    async with released(finish, deleting, ordering):
        await asyncio.sleep(0.5)
        assert not ordering.done(), "the order went on while the account was being erased"
    assert (await deleting)["deleteMyAccount"] == {"errors": [], "deleted": True}
    answer = await ordering
    # Refused inside its transaction (UNAUTHENTICATED), or at the door if it was authenticated
    # after the deletion committed: either way no order.
    if answer.status_code == 200:
        assert answer.json()["data"]["createOrder"] == {"errors": [{"code": "UNAUTHENTICATED"}], "order": None}
    else:
        assert answer.status_code == 401, answer.text
    assert not await Order.filter(buyer_id=user_id).exists()
    assert await CardKey.filter(product_id=product.id, status=CardKeyStatus.AVAILABLE).count() == 2
    assert not (await User.get(id=user_id)).is_active


async def test_a_deletion_begun_during_an_order_waits_and_is_refused(make_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The order's transaction has begun (its buyer's row share-locked); a deletion waits for it,
    then sees an order in flight and changes nothing."""
    client: Client = make_client()
    me = await client.register(nickname="Buying")
    user_id = int(GlobalID.from_id(me["user"]["id"]).node_id)
    product = await make_product(keys=2)
    reserving, finish = asyncio.Event(), asyncio.Event()
    reserve = inventory.reserve

    async def paused_reserve(*args: Any, **kwargs: Any) -> Any:
        reserving.set()
        await finish.wait()
        return await reserve(*args, **kwargs)

    monkeypatch.setattr(inventory, "reserve", paused_reserve)
    ordering = asyncio.create_task(client.gql(CREATE, order_input(product.id)))
    await reserving.wait()
    deleting = asyncio.create_task(client.gql(DELETE, {"input": {"password": me["password"]}}))
    async with released(finish, deleting, ordering):
        await asyncio.sleep(0.5)
        assert not deleting.done(), "the deletion went on while an order of the account was being made"
    made = (await ordering)["createOrder"]
    assert made["errors"] == [] and made["order"] is not None
    refused = (await deleting)["deleteMyAccount"]
    assert refused["deleted"] is None and refused["errors"], refused
    assert refused["errors"][0]["code"] == "INVALID_STATE" and "in progress" in refused["errors"][0]["message"]
    assert (await User.get(id=user_id)).is_active
    assert await Order.filter(buyer_id=user_id).count() == 1
