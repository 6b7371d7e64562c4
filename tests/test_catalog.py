"""Merchants, categories and products over HTTP: permissions, bad input (nothing changes),
visibility, deposits in the ledger, filters, keyset sorts stable under inserts, and a
product page whose SQL query count does not grow with its size."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from strawberry.relay import GlobalID

from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind, Product, ProductStatus
from models.commerce.merchants import Category, Merchant, MerchantStatus
from resolvers.commerce import ledger
from tests.conftest import Client, count_queries

# -- helpers (also used by tests/test_inventory.py) ---------------------------------------


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def signed_in(client: Client, role: Role = Role.BUYER) -> Client:
    """Register through the API, then give the account ``role`` (authorization reads the row)."""
    registered = await client.register(nickname=f"{role.value.title()} {uuid.uuid4().hex[:4]}")
    user_id = pk(registered["user"]["id"])
    if role != Role.BUYER:
        await User.filter(id=user_id).update(role=role)
    client.user_id = user_id  # type: ignore[attr-defined]
    return client


def unique_name(prefix: str = "Shop") -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


CREATE_MERCHANT = """mutation($input: CreateMerchantInput!) { createMerchant(input: $input) {
  errors { code field message } merchant { id name description status owner { id } } } }"""
SET_STATUS = """mutation($input: SetMerchantStatusInput!) { setMerchantStatus(input: $input) {
  errors { code field } merchant { id status } } }"""
HOLD = """mutation($input: HoldMerchantDepositInput!) { holdMerchantDeposit(input: $input) {
  errors { code field message } merchant { id deposit { amount currency } balance { amount } } } }"""
CREATE_CATEGORY = """mutation($input: CreateCategoryInput!) { createCategory(input: $input) {
  errors { code field message } category { id name slug parent { id slug } } } }"""
PRODUCT_FIELDS = """id title description price { amount currency } stock deliveryKind status soldCount rating
  reviewCount minQuantity maxQuantity merchant { id name } category { id slug }
  wholesaleTiers { minQuantity unitPrice { amount currency } } deliveryPromise { minutes text }"""
CREATE_PRODUCT = f"""mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{
  errors {{ code field message }} product {{ {PRODUCT_FIELDS} }} }} }}"""
UPDATE_PRODUCT = f"""mutation($input: UpdateProductInput!) {{ updateProduct(input: $input) {{
  errors {{ code field message }} product {{ {PRODUCT_FIELDS} }} }} }}"""
PRODUCT = f"query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"
MERCHANT = "query($id: ID!) { merchant(id: $id) { id name status deposit { amount } balance { amount } } }"
PRODUCTS = """query($first: Int, $after: String, $last: Int, $before: String, $filter: ProductFilter, $sort: ProductSort) {
  products(first: $first, after: $after, last: $last, before: $before, filter: $filter, sort: $sort) {
    edges { cursor node { id title price { amount } soldCount } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""


async def create_merchant(client: Client, name: str | None = None) -> dict[str, Any]:
    payload = (await client.gql(CREATE_MERCHANT, {"input": {"name": name or unique_name(), "description": "Games"}}))
    result = payload["createMerchant"]
    assert result["errors"] == [], result
    return result["merchant"]


async def merchant_client(make_client) -> tuple[Client, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A signed-in MERCHANT with a shop."""
    client = await signed_in(make_client(), Role.MERCHANT)
    return client, await create_merchant(client)


async def create_product(client: Client, merchant_id: str, **fields: Any) -> dict[str, Any]:
    data = {"merchantId": merchant_id, "title": f"Card {uuid.uuid4().hex[:6]}", "price": "10.00",
            "deliveryKind": "CARD_KEY", **fields}  # fmt: skip
    result = (await client.gql(CREATE_PRODUCT, {"input": data}))["createProduct"]
    assert result["errors"] == [], result
    return result["product"]


def codes(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


# -- merchants --------------------------------------------------------------------------


async def test_merchant_creation_permissions_and_uniqueness(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    anonymous = (await client.gql(CREATE_MERCHANT, {"input": {"name": unique_name()}}))["createMerchant"]
    assert codes(anonymous) == [("UNAUTHENTICATED", None)] and anonymous["merchant"] is None
    buyer = await signed_in(make_client())
    refused = (await buyer.gql(CREATE_MERCHANT, {"input": {"name": unique_name()}}))["createMerchant"]
    assert codes(refused) == [("FORBIDDEN", None)]

    seller = await signed_in(make_client(), Role.MERCHANT)
    name = unique_name()
    shop = await create_merchant(seller, name)
    assert shop["name"] == name and shop["status"] == "ACTIVE" and shop["owner"]["id"] == gid("User", seller.user_id)  # type: ignore[attr-defined]
    second = (await seller.gql(CREATE_MERCHANT, {"input": {"name": unique_name()}}))["createMerchant"]
    assert codes(second) == [("DUPLICATE", None)]  # one shop per merchant

    rival = await signed_in(make_client(), Role.MERCHANT)
    taken = (await rival.gql(CREATE_MERCHANT, {"input": {"name": name.upper()}}))["createMerchant"]
    assert codes(taken) == [("DUPLICATE", "name")]  # names are unique, case aside

    admin = await signed_in(make_client(), Role.ADMIN)
    await create_merchant(admin)
    await create_merchant(admin)  # an admin may open several
    assert await Merchant.filter(owner_id=admin.user_id).count() == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "x"}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 81}, "name"),
        ({"name": "bad\u0001name"}, "name"),  # NUL is refused earlier, by the input boundary (test_hostile)
        ({"name": "{u}", "description": "d" * 2001}, "description"),
        ({"name": "{u}", "description": "bell\u0007"}, "description"),
    ],
)
async def test_bad_merchant_input_changes_nothing(make_client, fields: dict[str, str], field: str) -> None:  # type: ignore[no-untyped-def]
    seller = await signed_in(make_client(), Role.MERCHANT)
    before = await Merchant.all().count()
    data = {k: v.replace("{u}", unique_name()) for k, v in fields.items()}
    payload = (await seller.gql(CREATE_MERCHANT, {"input": data}))["createMerchant"]
    assert codes(payload) == [("INVALID_INPUT", field)] and payload["merchant"] is None
    assert await Merchant.all().count() == before


async def test_concurrent_shop_creation_by_one_merchant_makes_one(make_client) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    seller = await signed_in(make_client(), Role.MERCHANT)
    results = await asyncio.gather(
        *(seller.gql(CREATE_MERCHANT, {"input": {"name": unique_name()}}) for _ in range(6))
    )
    outcomes = sorted(codes(r["createMerchant"]) for r in results)
    assert outcomes == [[]] + [[("DUPLICATE", None)]] * 5
    assert await Merchant.filter(owner_id=seller.user_id).count() == 1  # type: ignore[attr-defined]


async def test_staff_suspend_a_shop_which_hides_its_products(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    product = await create_product(seller, shop["id"])
    moderator = await signed_in(make_client(), Role.MODERATOR)

    own = (await seller.gql(SET_STATUS, {"input": {"merchantId": shop["id"], "status": "SUSPENDED"}}))
    assert codes(own["setMerchantStatus"]) == [("FORBIDDEN", None)]
    bad = (await moderator.gql(SET_STATUS, {"input": {"merchantId": product["id"], "status": "SUSPENDED"}}))
    assert codes(bad["setMerchantStatus"]) == [("INVALID_INPUT", "merchantId")]
    missing = (await moderator.gql(SET_STATUS, {"input": {"merchantId": gid("Merchant", 10**12), "status": "SUSPENDED"}}))
    assert codes(missing["setMerchantStatus"]) == [("NOT_FOUND", "merchantId")]

    done = (await moderator.gql(SET_STATUS, {"input": {"merchantId": shop["id"], "status": "SUSPENDED"}}))
    assert done["setMerchantStatus"] == {"errors": [], "merchant": {"id": shop["id"], "status": "SUSPENDED"}}
    assert (await client.gql(PRODUCT, {"id": product["id"]}))["product"] is None  # the public no longer sees it
    listing = await client.gql(PRODUCTS, {"filter": {"merchantId": shop["id"]}})
    assert listing["products"]["edges"] == []
    assert (await seller.gql(PRODUCT, {"id": product["id"]}))["product"]["id"] == product["id"]  # the owner does
    frozen = (await seller.gql(CREATE_PRODUCT, {"input": {"merchantId": shop["id"], "title": "New", "price": "1.00",
                                                          "deliveryKind": "MANUAL"}}))["createProduct"]  # fmt: skip
    assert codes(frozen) == [("INVALID_STATE", "merchantId")]

    await moderator.gql(SET_STATUS, {"input": {"merchantId": shop["id"], "status": "ACTIVE"}})
    assert (await client.gql(PRODUCT, {"id": product["id"]}))["product"]["id"] == product["id"]


async def test_deposit_is_held_from_the_owner_wallet(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    staff = await signed_in(make_client(), Role.ADMIN)
    wallet = ledger.wallet(seller.user_id)  # type: ignore[attr-defined]
    deposit = ledger.merchant_deposit(pk(shop["id"]))

    hold = {"merchantId": shop["id"], "amount": "500.00"}
    short = (await staff.gql(HOLD, {"input": hold}))["holdMerchantDeposit"]
    assert codes(short) == [("INSUFFICIENT_BALANCE", "amount")] and short["merchant"] is None
    assert await ledger.balance(deposit) == 0

    await ledger.post("test.fund", uuid.uuid4().hex, [(ledger.ADJUSTMENTS, Decimal("-800")), (wallet, Decimal("800"))])
    for amount in ("0", "-5", "1.234", "abc", "NaN", "Infinity", ""):
        bad = (await staff.gql(HOLD, {"input": {"merchantId": shop["id"], "amount": amount}}))["holdMerchantDeposit"]
        assert codes(bad) == [("INVALID_INPUT", "amount")], amount
    refused = (await seller.gql(HOLD, {"input": hold}))["holdMerchantDeposit"]
    assert codes(refused) == [("FORBIDDEN", None)]
    assert await ledger.balance(wallet) == Decimal("800.00")

    held = (await staff.gql(HOLD, {"input": {**hold, "idempotencyKey": "deposit-2026-001"}}))["holdMerchantDeposit"]
    assert held["errors"] == []
    assert held["merchant"]["deposit"] == {"amount": "500.00", "currency": "CNY"}
    again = (await staff.gql(HOLD, {"input": {**hold, "idempotencyKey": "deposit-2026-001"}}))["holdMerchantDeposit"]
    assert again["errors"] == [] and again["merchant"]["deposit"]["amount"] == "500.00"  # held once
    clash = {"merchantId": shop["id"], "amount": "100.00", "idempotencyKey": "deposit-2026-001"}
    assert codes((await staff.gql(HOLD, {"input": clash}))["holdMerchantDeposit"]) == [("DUPLICATE", "idempotencyKey")]
    assert await ledger.balance(wallet) == Decimal("300.00")

    # The deposit is public (a trust signal); the earnings balance only for the owner and staff.
    public = (await client.gql(MERCHANT, {"id": shop["id"]}))["merchant"]
    assert public["deposit"] == {"amount": "500.00"} and public["balance"] is None
    assert (await seller.gql(MERCHANT, {"id": shop["id"]}))["merchant"]["balance"] == {"amount": "0.00"}
    assert (await staff.gql(MERCHANT, {"id": shop["id"]}))["merchant"]["balance"] == {"amount": "0.00"}
    other = await signed_in(make_client(), Role.MERCHANT)
    assert (await other.gql(MERCHANT, {"id": shop["id"]}))["merchant"]["balance"] is None


# -- categories -------------------------------------------------------------------------


async def test_categories(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    staff = await signed_in(make_client(), Role.ADMIN)
    slug = f"games-{uuid.uuid4().hex[:8]}"
    parent = (await staff.gql(CREATE_CATEGORY, {"input": {"name": "Games", "slug": slug}}))["createCategory"]
    assert parent["errors"] == [] and parent["category"]["parent"] is None
    child_input = {"name": "Steam", "slug": f"{slug}-steam", "parentId": parent["category"]["id"]}
    child = (await staff.gql(CREATE_CATEGORY, {"input": child_input}))["createCategory"]
    assert child["category"]["parent"] == {"id": parent["category"]["id"], "slug": slug}

    before = await Category.all().count()
    for data, expected in [
        ({"name": "Again", "slug": slug}, ("DUPLICATE", "slug")),
        ({"name": "Bad", "slug": "Not A Slug"}, ("INVALID_INPUT", "slug")),
        ({"name": "Bad", "slug": "double--hyphen"}, ("INVALID_INPUT", "slug")),
        ({"name": "", "slug": f"x-{uuid.uuid4().hex[:6]}"}, ("INVALID_INPUT", "name")),
        ({"name": "Orphan", "slug": f"x-{uuid.uuid4().hex[:6]}", "parentId": gid("Category", 10**12)}, ("NOT_FOUND", "parentId")),
        ({"name": "Orphan", "slug": f"x-{uuid.uuid4().hex[:6]}", "parentId": gid("Product", 1)}, ("INVALID_INPUT", "parentId")),
    ]:  # fmt: skip
        payload = (await staff.gql(CREATE_CATEGORY, {"input": data}))["createCategory"]
        assert codes(payload) == [expected], data
    seller = await signed_in(make_client(), Role.MERCHANT)
    refused = (await seller.gql(CREATE_CATEGORY, {"input": {"name": "Mine", "slug": f"m-{uuid.uuid4().hex[:6]}"}}))
    assert codes(refused["createCategory"]) == [("FORBIDDEN", None)]
    assert await Category.all().count() == before

    listed = (await client.gql("{ categories { id slug parent { slug } } }"))["categories"]
    by_slug = {c["slug"]: c for c in listed}
    assert by_slug[f"{slug}-steam"]["parent"] == {"slug": slug}


# -- products ---------------------------------------------------------------------------


async def test_create_product_and_read_it_back(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    staff = await signed_in(make_client(), Role.ADMIN)
    category = (await staff.gql(CREATE_CATEGORY, {"input": {"name": "Cards", "slug": f"c-{uuid.uuid4().hex[:8]}"}}))
    category_id = category["createCategory"]["category"]["id"]
    product = await create_product(
        seller, shop["id"], title="  Steam ¥100  ", description="Line one\nLine two", price="95.5",
        categoryId=category_id, wholesaleTiers=[{"minQuantity": 10, "unitPrice": "93.00"}, {"minQuantity": 5, "unitPrice": "94"}],
        minQuantity=1, maxQuantity=50, deliveryPromiseMinutes=90,
    )  # fmt: skip
    assert product["title"] == "Steam ¥100"
    assert product["price"] == {"amount": "95.50", "currency": "CNY"}
    assert product["stock"] == 0 and product["deliveryKind"] == "CARD_KEY" and product["status"] == "ACTIVE"
    assert product["rating"] is None and product["reviewCount"] == 0 and product["soldCount"] == 0
    assert product["merchant"] == {"id": shop["id"], "name": shop["name"]}
    assert product["category"]["id"] == category_id
    assert product["wholesaleTiers"] == [
        {"minQuantity": 5, "unitPrice": {"amount": "94.00", "currency": "CNY"}},
        {"minQuantity": 10, "unitPrice": {"amount": "93.00", "currency": "CNY"}},
    ]
    assert product["deliveryPromise"] == {"minutes": 90, "text": "Delivered within 1 hour 30 minutes"}

    manual = await create_product(seller, shop["id"], deliveryKind="MANUAL", stockLimit=7)
    unlimited = await create_product(seller, shop["id"], deliveryKind="DIRECT_TOPUP")
    assert manual["stock"] == 7 and unlimited["stock"] is None
    assert manual["deliveryPromise"] == {"minutes": 10, "text": "Delivered within 10 minutes"}

    await Product.filter(id=pk(product["id"])).update(rating_sum=9, review_count=2)
    read = (await client.gql(PRODUCT, {"id": product["id"]}))["product"]
    assert read["rating"] == 4.5 and read["reviewCount"] == 2
    node = await client.gql("query($id: ID!) { node(id: $id) { ... on Product { title } } }", {"id": product["id"]})
    assert node["node"] == {"title": "Steam ¥100"}
    nodes = await client.gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [shop["id"], category_id, product["id"]]}
    )
    assert [n["id"] for n in nodes["nodes"]] == [shop["id"], category_id, product["id"]]
    # Many products by node: batched (one query for the products, one for their shops).
    more = [await create_product(seller, shop["id"]) for _ in range(4)]
    hidden = await create_product(seller, shop["id"], status="HIDDEN")
    ids = [p["id"] for p in more] + [hidden["id"], gid("Product", 10**12)]
    with count_queries() as queries:
        found = await client.gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert found["nodes"] == [{"id": p["id"]} for p in more] + [None, None]
    assert sum(1 for s in queries.statements if '"product"' in s or '"merchant"' in s) == 2


BAD_PRODUCTS = [
    ({"price": "0"}, "INVALID_INPUT", "price"),
    ({"price": "-1.00"}, "INVALID_INPUT", "price"),
    ({"price": "1.234"}, "INVALID_INPUT", "price"),
    ({"price": "ten"}, "INVALID_INPUT", "price"),
    ({"price": "NaN"}, "INVALID_INPUT", "price"),
    ({"price": "1e12"}, "INVALID_INPUT", "price"),
    ({"title": "   "}, "INVALID_INPUT", "title"),
    ({"title": "t" * 121}, "INVALID_INPUT", "title"),
    ({"description": "d" * 20_001}, "INVALID_INPUT", "description"),
    ({"minQuantity": 0}, "INVALID_INPUT", "minQuantity"),
    ({"minQuantity": 5, "maxQuantity": 4}, "INVALID_INPUT", "maxQuantity"),
    ({"maxQuantity": 10_001}, "INVALID_INPUT", "maxQuantity"),
    ({"deliveryPromiseMinutes": -1}, "INVALID_INPUT", "deliveryPromiseMinutes"),
    ({"stockLimit": 5}, "INVALID_INPUT", "stockLimit"),  # CARD_KEY stock is its keys
    ({"deliveryKind": "MANUAL", "stockLimit": -1}, "INVALID_INPUT", "stockLimit"),
    ({"wholesaleTiers": [{"minQuantity": 1, "unitPrice": "9.00"}]}, "INVALID_INPUT", "wholesaleTiers"),
    ({"wholesaleTiers": [{"minQuantity": 5, "unitPrice": "10.00"}]}, "INVALID_INPUT", "wholesaleTiers"),
    ({"wholesaleTiers": [{"minQuantity": 5, "unitPrice": "9.001"}]}, "INVALID_INPUT", "wholesaleTiers"),
    ({"wholesaleTiers": [{"minQuantity": 5, "unitPrice": "8.00"}, {"minQuantity": 10, "unitPrice": "9.00"}]},
     "INVALID_INPUT", "wholesaleTiers"),
    ({"wholesaleTiers": [{"minQuantity": 500, "unitPrice": "8.00"}]}, "INVALID_INPUT", "wholesaleTiers"),
    ({"status": None}, "INVALID_INPUT", "status"),
    ({"minQuantity": None}, "INVALID_INPUT", "minQuantity"),
    ({"categoryId": gid("Category", 10**12)}, "NOT_FOUND", "categoryId"),
    ({"categoryId": gid("Merchant", 1)}, "INVALID_INPUT", "categoryId"),
    ({"merchantId": gid("Merchant", 10**12)}, "NOT_FOUND", "merchantId"),
]


async def test_bad_product_input_changes_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    before = await Product.all().count()
    for fields, code, field in BAD_PRODUCTS:
        data = {"merchantId": shop["id"], "title": "Card", "price": "10.00", "deliveryKind": "CARD_KEY", **fields}
        payload = (await seller.gql(CREATE_PRODUCT, {"input": data}))["createProduct"]
        assert codes(payload) == [(code, field)], fields
        assert payload["product"] is None
    # Not an ID at all: a UserError like any other bad input.
    data = {"merchantId": "not a global id", "title": "Card", "price": "10.00", "deliveryKind": "CARD_KEY"}
    payload = (await seller.gql(CREATE_PRODUCT, {"input": data}))["createProduct"]
    assert codes(payload) == [("INVALID_INPUT", "merchantId")] and payload["product"] is None
    assert await Product.all().count() == before


async def test_only_the_owner_or_staff_manage_products(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    data = {"merchantId": shop["id"], "title": "Card", "price": "10.00", "deliveryKind": "CARD_KEY"}
    anonymous = (await client.gql(CREATE_PRODUCT, {"input": data}))["createProduct"]
    assert codes(anonymous) == [("UNAUTHENTICATED", None)]
    rival, _ = await merchant_client(make_client)
    assert codes((await rival.gql(CREATE_PRODUCT, {"input": data}))["createProduct"]) == [("FORBIDDEN", None)]
    staff = await signed_in(make_client(), Role.ADMIN)
    made = (await staff.gql(CREATE_PRODUCT, {"input": data}))["createProduct"]
    assert made["errors"] == [] and made["product"]["merchant"]["id"] == shop["id"]

    update = {"id": made["product"]["id"], "title": "Renamed"}
    assert codes((await client.gql(UPDATE_PRODUCT, {"input": update}))["updateProduct"]) == [("UNAUTHENTICATED", None)]
    assert codes((await rival.gql(UPDATE_PRODUCT, {"input": update}))["updateProduct"]) == [("FORBIDDEN", None)]
    assert (await Product.get(id=pk(made["product"]["id"]))).title == "Card"
    renamed = (await seller.gql(UPDATE_PRODUCT, {"input": update}))["updateProduct"]
    assert renamed["errors"] == [] and renamed["product"]["title"] == "Renamed"


async def test_update_product(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    staff = await signed_in(make_client(), Role.ADMIN)
    category = (await staff.gql(CREATE_CATEGORY, {"input": {"name": "Top-ups", "slug": f"t-{uuid.uuid4().hex[:8]}"}}))
    category_id = category["createCategory"]["category"]["id"]
    product = await create_product(
        seller, shop["id"], deliveryKind="MANUAL", stockLimit=5, categoryId=category_id, price="20.00",
        wholesaleTiers=[{"minQuantity": 10, "unitPrice": "18.00"}],
    )  # fmt: skip
    row_before = await Product.get(id=pk(product["id"]))

    # Bad input: nothing changes.
    for fields, code, field in [
        ({"title": None}, "INVALID_INPUT", "title"),
        ({"price": None}, "INVALID_INPUT", "price"),
        ({"price": "18.00"}, "INVALID_INPUT", "wholesaleTiers"),  # the tier would no longer be cheaper
        ({"maxQuantity": 5}, "INVALID_INPUT", "wholesaleTiers"),  # the tier would be unreachable
        ({"minQuantity": 200}, "INVALID_INPUT", "minQuantity"),
        ({"stockLimit": -3}, "INVALID_INPUT", "stockLimit"),
        ({"deliveryKind": "CARD_KEY", "stockLimit": 3}, "INVALID_INPUT", "stockLimit"),
        ({"categoryId": gid("Category", 10**12)}, "NOT_FOUND", "categoryId"),
        ({"id": gid("Product", 10**12), "title": "Ghost"}, "NOT_FOUND", "id"),
        ({"id": shop["id"], "title": "Wrong type"}, "INVALID_INPUT", "id"),
    ]:
        payload = (await seller.gql(UPDATE_PRODUCT, {"input": {"id": product["id"], **fields}}))["updateProduct"]
        assert codes(payload) == [(code, field)], fields
    row_after = await Product.get(id=pk(product["id"]))
    assert {k: v for k, v in vars(row_after).items() if not k.startswith("_")} == {
        k: v for k, v in vars(row_before).items() if not k.startswith("_")
    }

    # Fields left out keep their value; null clears the category and the stock limit.
    changed = (await seller.gql(UPDATE_PRODUCT, {"input": {"id": product["id"], "price": "25", "categoryId": None,
                                                           "stockLimit": None, "status": "HIDDEN"}}))["updateProduct"]  # fmt: skip
    assert changed["errors"] == []
    after = changed["product"]
    assert after["price"]["amount"] == "25.00" and after["category"] is None and after["stock"] is None
    assert after["status"] == "HIDDEN" and after["title"] == product["title"]
    assert after["wholesaleTiers"] == product["wholesaleTiers"]

    # Hidden: only the owner and staff see it.
    assert (await client.gql(PRODUCT, {"id": product["id"]}))["product"] is None
    assert (await client.gql("query($id: ID!) { node(id: $id) { id } }", {"id": product["id"]}))["node"] is None
    assert (await seller.gql(PRODUCT, {"id": product["id"]}))["product"]["status"] == "HIDDEN"
    assert (await staff.gql(PRODUCT, {"id": product["id"]}))["product"]["status"] == "HIDDEN"
    public = await client.gql(PRODUCTS, {"filter": {"merchantId": shop["id"]}})
    assert public["products"]["edges"] == []
    mine = await seller.gql(PRODUCTS, {"filter": {"merchantId": shop["id"], "includeHidden": True}})
    assert [e["node"]["id"] for e in mine["products"]["edges"]] == [product["id"]]
    others = await client.gql(PRODUCTS, {"filter": {"merchantId": shop["id"], "includeHidden": True}})
    assert others["products"]["edges"] == []  # includeHidden only reveals what the viewer manages

    # Switching kind is allowed while the product has neither keys nor orders.
    switched = (await seller.gql(UPDATE_PRODUCT, {"input": {"id": product["id"], "deliveryKind": "CARD_KEY"}}))
    assert switched["updateProduct"]["product"]["deliveryKind"] == "CARD_KEY"
    imported = await seller.gql(
        "mutation($input: ImportCardKeysInput!) { importCardKeys(input: $input) { errors { code } imported } }",
        {"input": {"productId": product["id"], "keys": ["K-1"]}},
    )
    assert imported["importCardKeys"] == {"errors": [], "imported": 1}
    back = (await seller.gql(UPDATE_PRODUCT, {"input": {"id": product["id"], "deliveryKind": "MANUAL"}}))
    assert codes(back["updateProduct"]) == [("INVALID_STATE", "deliveryKind")]


async def test_product_filters(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    staff = await signed_in(make_client(), Role.ADMIN)
    category = (await staff.gql(CREATE_CATEGORY, {"input": {"name": "F", "slug": f"f-{uuid.uuid4().hex[:8]}"}}))
    category_id = category["createCategory"]["category"]["id"]
    tag = uuid.uuid4().hex[:8]
    cheap = await create_product(seller, shop["id"], title=f"Cheap {tag} Netflix", price="9.00")
    mid = await create_product(seller, shop["id"], title=f"Mid {tag} netflix", price="10.00", categoryId=category_id)
    dear = await create_product(seller, shop["id"], title=f"Dear {tag} Steam", price="100.00", deliveryKind="MANUAL")

    async def ids(**filter: Any) -> list[str]:
        data = await client.gql(PRODUCTS, {"filter": {"merchantId": shop["id"], **filter}, "sort": "PRICE_ASC"})
        return [e["node"]["id"] for e in data["products"]["edges"]]

    assert await ids() == [cheap["id"], mid["id"], dear["id"]]  # numeric order, not text order
    assert await ids(search="NETFLIX") == [cheap["id"], mid["id"]]
    assert await ids(categoryId=category_id) == [mid["id"]]
    assert await ids(deliveryKind="MANUAL") == [dear["id"]]
    assert await ids(minPrice="9.5") == [mid["id"], dear["id"]]
    assert await ids(maxPrice="10") == [cheap["id"], mid["id"]]
    assert await ids(minPrice="10.00", maxPrice="10.00") == [mid["id"]]
    everywhere = await client.gql(PRODUCTS, {"filter": {"search": tag}, "first": 100})
    assert {e["node"]["id"] for e in everywhere["products"]["edges"]} == {cheap["id"], mid["id"], dear["id"]}
    percent = await create_product(seller, shop["id"], title=f"{tag} 100% off", price="50.00")
    await create_product(seller, shop["id"], title=f"{tag} 1000 off", price="50.00")
    assert await ids(search=f"{tag} 100%") == [percent["id"]]  # LIKE wildcards in a search are literal
    assert await ids(search=f"{tag} 1_0") == []

    for bad in ({"minPrice": "cheap"}, {"minPrice": "5", "maxPrice": "1"}, {"merchantId": cheap["id"]}):
        response = (await client.post(PRODUCTS, {"filter": bad})).json()
        assert response["errors"][0]["extensions"]["code"] == "INVALID_INPUT", bad
    capped = (await client.post(PRODUCTS, {"first": 101})).json()
    assert capped["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


# -- keyset paging ----------------------------------------------------------------------


SORT_KEYS = {
    "NEWEST": lambda p: (-p.id,),
    "PRICE_ASC": lambda p: (p.price, p.id),
    "PRICE_DESC": lambda p: (-p.price, -p.id),
    "BEST_SELLING": lambda p: (-p.sold_count, -p.id),
}


@pytest.mark.parametrize("sort", list(SORT_KEYS))
async def test_keyset_paging_is_stable_under_inserts(client: Client, make_client, sort: str) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    merchant_id = pk(shop["id"])
    # Ties on purpose (equal prices and sales), and prices that sort differently as text.
    values = [("9.00", 5), ("10.00", 5), ("100.00", 1), ("9.00", 0), ("2.50", 5), ("10.00", 3), ("55.55", 9)]
    for price, sold in values:
        await Product.create(merchant_id=merchant_id, title="P", price=Decimal(price), delivery_kind=DeliveryKind.MANUAL,
                             sold_count=sold)  # fmt: skip
    variables: dict[str, Any] = {"filter": {"merchantId": shop["id"]}, "sort": sort, "first": 3}

    async def page(**extra: Any) -> dict[str, Any]:
        return (await client.gql(PRODUCTS, {**variables, **extra}))["products"]

    first = await page()
    seen = [e["node"]["id"] for e in first["edges"]]
    assert first["pageInfo"]["hasNextPage"] is True and first["pageInfo"]["hasPreviousPage"] is False
    originals = await Product.filter(merchant_id=merchant_id)
    expected_all = [gid("Product", p.id) for p in sorted(originals, key=SORT_KEYS[sort])]
    assert seen == expected_all[:3]

    # Inserts on both sides of the boundary, including exact ties with the last row seen.
    boundary = next(p for p in originals if gid("Product", p.id) == seen[-1])
    for price, sold in [("1.00", 100), ("999.00", 0), (str(boundary.price), boundary.sold_count), ("10.00", 5)]:
        await Product.create(merchant_id=merchant_id, title="New", price=Decimal(price),
                             delivery_kind=DeliveryKind.MANUAL, sold_count=sold)  # fmt: skip
    cursor = first["pageInfo"]["endCursor"]
    while True:
        nxt = await page(after=cursor)
        seen += [e["node"]["id"] for e in nxt["edges"]]
        cursor = nxt["pageInfo"]["endCursor"]
        assert nxt["pageInfo"]["hasPreviousPage"] is True
        if not nxt["pageInfo"]["hasNextPage"]:
            break
    assert len(seen) == len(set(seen))  # nothing twice
    assert set(expected_all) <= set(seen)  # nothing skipped
    everything = sorted(await Product.filter(merchant_id=merchant_id), key=SORT_KEYS[sort])
    position = {gid("Product", p.id): i for i, p in enumerate(everything)}
    assert [position[i] for i in seen] == sorted(position[i] for i in seen)  # in order throughout
    after_boundary = [gid("Product", p.id) for p in everything][position[seen[2]] + 1 :]
    assert seen[3:] == after_boundary  # rows inserted past the boundary show up; those before do not

    # Backwards from the end gives the same order.
    last = await page(first=None, last=4)
    assert [e["node"]["id"] for e in last["edges"]] == [gid("Product", p.id) for p in everything][-4:]
    before = await page(first=None, last=2, before=last["pageInfo"]["startCursor"])
    assert [e["node"]["id"] for e in before["edges"]] == [gid("Product", p.id) for p in everything][-6:-4]
    assert before["pageInfo"]["hasNextPage"] is True


async def test_cursors_belong_to_their_sort(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    for _ in range(2):
        await create_product(seller, shop["id"])
    by_price = (await client.gql(PRODUCTS, {"filter": {"merchantId": shop["id"]}, "sort": "PRICE_ASC", "first": 1}))
    cursor = by_price["products"]["pageInfo"]["endCursor"]
    for sort in ("BEST_SELLING", "NEWEST"):
        response = (await client.post(PRODUCTS, {"sort": sort, "after": cursor})).json()
        assert response["errors"][0]["extensions"]["code"] == "INVALID_INPUT", sort
    garbage = (await client.post(PRODUCTS, {"sort": "PRICE_DESC", "after": "bm9wZQ"})).json()
    assert garbage["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


# -- the N+1 guard ----------------------------------------------------------------------

LIST_PAGE = """query($first: Int!, $filter: ProductFilter) { products(first: $first, filter: $filter) {
  edges { node { id title price { amount currency } stock rating reviewCount soldCount deliveryKind
    merchant { id name } category { id name } deliveryPromise { text } wholesaleTiers { minQuantity } } } } }"""
CATALOG_TABLES = ('"product"', '"merchant"', '"card_key"', '"category"', '"user"', '"auth_session"', '"ledger_account"')


async def test_product_page_runs_a_constant_number_of_queries(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    staff = await signed_in(make_client(), Role.ADMIN)
    tag = uuid.uuid4().hex[:8]
    categories = []
    for i in range(3):
        made = await staff.gql(CREATE_CATEGORY, {"input": {"name": f"N{i}", "slug": f"n{i}-{tag}"}})
        categories.append(made["createCategory"]["category"]["id"])
    shops = [await merchant_client(make_client) for _ in range(4)]
    for i in range(20):
        seller, shop = shops[i % 4]
        kind = "CARD_KEY" if i % 3 else "MANUAL"
        product = await create_product(seller, shop["id"], title=f"{tag} item {i}", deliveryKind=kind,
                                       categoryId=categories[i % 3],
                                       wholesaleTiers=[{"minQuantity": 10, "unitPrice": "9.00"}])  # fmt: skip
        if kind == "CARD_KEY":
            keys = [f"{tag}-{i}-{n}" for n in range(i % 4 + 1)]
            result = await seller.gql(
                "mutation($input: ImportCardKeysInput!) { importCardKeys(input: $input) { errors { code } } }",
                {"input": {"productId": product["id"], "keys": keys}},
            )
            assert result["importCardKeys"]["errors"] == []
        await Product.filter(id=pk(product["id"])).update(rating_sum=i, review_count=i % 5)

    counts = {}
    for size in (1, 5, 20):
        with count_queries() as queries:
            data = await client.gql(LIST_PAGE, {"first": size, "filter": {"search": tag}})
        edges = data["products"]["edges"]
        assert len(edges) == size
        assert all(e["node"]["merchant"]["name"] and e["node"]["category"] for e in edges)
        # Only the statements of this request (a background sweep may run meanwhile).
        counts[size] = sum(1 for s in queries.statements if any(t in s for t in CATALOG_TABLES))
    assert counts[1] == counts[5] == counts[20], counts
    assert counts[20] <= 3, counts  # the page (with its merchants), stock, categories

    stocks = {e["node"]["title"]: e["node"]["stock"] for e in data["products"]["edges"]}
    assert stocks[f"{tag} item 0"] is None and stocks[f"{tag} item 1"] == 2 and stocks[f"{tag} item 2"] == 3


async def test_merchant_products_connection_and_status_enum(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    seller, shop = await merchant_client(make_client)
    visible = await create_product(seller, shop["id"])
    hidden = await create_product(seller, shop["id"], status="HIDDEN")
    query = "query($id: ID!) { merchant(id: $id) { products { edges { node { id } } totalCount } } }"
    public = (await client.gql(query, {"id": shop["id"]}))["merchant"]["products"]
    assert [e["node"]["id"] for e in public["edges"]] == [visible["id"]] and public["totalCount"] == 1
    own = (await seller.gql(query, {"id": shop["id"]}))["merchant"]["products"]
    assert [e["node"]["id"] for e in own["edges"]] == [hidden["id"], visible["id"]]
    assert await Product.filter(id=pk(hidden["id"]), status=ProductStatus.HIDDEN).exists()
    assert await Merchant.filter(id=pk(shop["id"]), status=MerchantStatus.ACTIVE).exists()
