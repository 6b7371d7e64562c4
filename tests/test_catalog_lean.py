"""The lean product page (issue 15) answers the very bytes the ORM path answers: a varied
catalogue (card keys available, reserved, sold out; stock limits and unlimited; hidden products;
a suspended shop), pages forward and backward with cursors, shop and kind filters, fragments
and aliases -- in one SQL statement. Selections it does not serve stay on the ORM path."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from strawberry.relay import GlobalID

from models.accounts.users import Role
from models.commerce.catalog import DeliveryKind, Product, ProductStatus
from models.commerce.inventory import CardKey, CardKeyStatus
from models.commerce.merchants import Merchant, MerchantStatus
from resolvers.commerce import catalog_lean
from resolvers.pagination import encode_cursor
from subscriptions import cache_tags
from tests.conftest import Client, count_queries
from tests.factories import add_keys, make_merchant, make_product, make_user, token_for

PAGE = """query($first: Int, $after: String, $last: Int, $before: String, $filter: ProductFilter) {
  products(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    edges { cursor node { id title price { amount currency } stock merchant { id name } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
STOREFRONT = "{ products(first: 20) { edges { node { id title price { amount currency } stock merchant { id name } } } } }"
FRAGMENTS = """query { all: products(first: 7) { __typename edges { node { ...Card
  ... on Product { deliveryKind status soldCount reviewCount minQuantity maxQuantity } } } } }
  fragment Card on Product { __typename key: id title cost: price { currency amount __typename }
  stock shop: merchant { name id __typename } }"""
NOT_LEAN = [  # fields, arguments or directives the lean nodes do not carry
    "{ products(first: 5) { edges { node { id description } } } }",
    "{ products(first: 5) { totalCount edges { node { id } } } }",
    "{ products(first: 5) { edges { node { id merchant { id status } } } } }",
    "{ products(first: 5) { edges { node { id createdAt } } } }",
    "query($no: Boolean!) { products(first: 5) { edges { node { id stock @include(if: $no) } } } }",
    "{ products(first: 5) { edges { node { ... on Node { id } } } } }",
    "{ products(first: 5, sort: PRICE_ASC) { edges { node { id title } } } }",
]


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


@pytest.fixture
async def catalogue() -> dict[str, Any]:
    """Two active shops and a suspended one, with every kind of product a page can meet."""
    shops = [await make_merchant() for _ in range(3)]
    await Merchant.filter(id=shops[2].id).update(status=MerchantStatus.SUSPENDED)
    products = []
    for n in range(14):
        kind = (DeliveryKind.CARD_KEY, DeliveryKind.DIRECT_TOPUP, DeliveryKind.MANUAL, DeliveryKind.CARD_KEY)[n % 4]
        card = kind == DeliveryKind.CARD_KEY
        products.append(await make_product(
            shops[n % 3], kind=kind, price=f"{n + 1}.{n % 10}0", keys=n % 3 if card else 0,
            stock_limit=None if card or n % 5 == 0 else n * 3,  # products[10]: MANUAL, unlimited
        ))
    await Product.filter(id=products[4].id).update(status=ProductStatus.HIDDEN, title="Hidden one")
    # products[0], a card-key product whose keys are all gone: one sold, one reserved.
    await add_keys(products[0], 2)
    first, second = await CardKey.filter(product_id=products[0].id).order_by("id")
    await CardKey.filter(id=first.id).update(status=CardKeyStatus.SOLD)
    await CardKey.filter(id=second.id).update(status=CardKeyStatus.RESERVED)
    await Product.filter(id=products[8].id).update(price=Decimal("1234567.50"), title="Ünïcode 卡 \"quoted\"")
    return {"shops": shops, "products": products}


async def both(client: Client, monkeypatch: pytest.MonkeyPatch, query: str, variables: dict[str, Any] | None = None,
               *, expect_lean: bool = True) -> bytes:
    """The answer's bytes through the lean path and through the ORM path: the same, or fail."""
    taken: list[int] = []
    real_page = catalog_lean.public_page

    async def spy(*args: Any, **kwargs: Any) -> Any:
        taken.append(1)
        return await real_page(*args, **kwargs)

    answers = []
    for lean in (True, False):
        with monkeypatch.context() as patch:
            patch.setattr(catalog_lean, "public_page", spy)
            if not lean:
                patch.setattr(catalog_lean, "lean_listing", lambda *args: False)
            cache_tags.touch(cache_tags.PRODUCT_LIST)  # a miss: this request runs GraphQL
            response = await client.post(query, variables)
        assert response.status_code == 200, response.text
        # The query budget's extensions (remaining, resetAt) move with every request: the
        # bytes before them are compared.
        answers.append(response.content)
    assert taken == ([1] if expect_lean else []), (query, variables)
    lean, orm = (answer.split(b',"extensions":', 1)[0] for answer in answers)
    assert lean == orm, (query, variables)
    return answers[0]


async def test_lean_page_answers_the_orm_bytes(client: Client, catalogue: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    shops, products = catalogue["shops"], catalogue["products"]
    body = await both(client, monkeypatch, STOREFRONT)
    assert b"Hidden one" not in body
    await both(client, monkeypatch, FRAGMENTS)

    for filter_ in ({"merchantId": gid("Merchant", shops[0].id)}, {"merchantId": gid("Merchant", shops[1].id),
                    "deliveryKind": "CARD_KEY"}, {"deliveryKind": "MANUAL"}, {"merchantId": gid("Merchant", shops[2].id)},
                    {"includeHidden": True, "merchantId": gid("Merchant", shops[0].id)}):
        # Forward three at a time, then backward from the end, through the whole shop list.
        seen: list[str] = []
        after = None
        for _ in range(20):
            raw = await both(client, monkeypatch, PAGE, {"first": 3, "after": after, "filter": filter_})
            page = orjson.loads(raw)["data"]["products"]
            seen += [edge["node"]["id"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        before = None
        for _ in range(20):
            page = orjson.loads(await both(client, monkeypatch, PAGE, {"last": 2, "before": before,
                                                                        "filter": filter_}))["data"]["products"]
            if not page["pageInfo"]["hasPreviousPage"]:
                break
            before = page["pageInfo"]["startCursor"]
        if "merchantId" in filter_ and filter_["merchantId"] == gid("Merchant", shops[2].id):
            assert seen == []  # a suspended shop lists nothing
        hidden = gid("Product", products[4].id)
        assert hidden not in seen

    middle = products[9].id
    for variables in ({"first": 0}, {"first": 100}, {"last": 4}, {"first": 2, "after": encode_cursor(middle)},
                      {"last": 2, "before": encode_cursor(middle)},
                      {"first": 5, "after": encode_cursor(products[12].id), "before": encode_cursor(products[3].id)}):
        await both(client, monkeypatch, PAGE, variables)
    for bad in ({"first": 1, "last": 1}, {"first": 101}, {"after": "not-a-cursor"}, {"last": -1}):
        raw = await both(client, monkeypatch, PAGE, bad)
        assert b'"errors"' in raw


async def test_stock_and_sold_out_read_like_the_orm(client: Client, catalogue: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    products = catalogue["products"]
    raw = await both(client, monkeypatch, PAGE, {"first": 100})
    stocks = {e["node"]["id"]: e["node"]["stock"] for e in orjson.loads(raw)["data"]["products"]["edges"]}
    assert stocks[gid("Product", products[0].id)] == 0  # sold and reserved keys do not count
    assert stocks[gid("Product", products[3].id)] == 0  # no keys at all
    assert stocks[gid("Product", products[7].id)] == 1
    assert stocks[gid("Product", products[10].id)] is None  # unlimited
    assert stocks[gid("Product", products[6].id)] == 18  # its stock limit


async def test_other_selections_and_signed_in_managers_stay_on_the_orm_path(
    client: Client, catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for query in NOT_LEAN:
        await both(client, monkeypatch, query, {"no": False} if "$no" in query else None, expect_lean=False)
    shop = catalogue["shops"][0]
    owner = await shop.owner
    client.token = await token_for(owner)
    await both(client, monkeypatch, PAGE, {"first": 20, "filter": {"merchantId": gid("Merchant", shop.id),
                                                                   "includeHidden": True}}, expect_lean=False)
    # Signed in without includeHidden: the public list, lean.
    client.token = await token_for(await make_user(Role.BUYER))
    await both(client, monkeypatch, STOREFRONT)


async def test_the_page_is_one_statement(client: Client, catalogue: dict[str, Any]) -> None:
    for _ in range(2):
        cache_tags.touch(cache_tags.PRODUCT_LIST)
        with count_queries() as queries:
            data = await client.gql(STOREFRONT)
        assert len(data["products"]["edges"]) == 20
        catalog_statements = [s for s in queries.statements if "product" in s or "merchant" in s or "card_key" in s]
        assert len(catalog_statements) == 1, catalog_statements  # product, shop and stock together
