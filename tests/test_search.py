"""Search (issue 11, item 5) over HTTP, on both stacks: segmented Chinese queries, words of a
description, shop and topics; title matches above body matches; hidden, held, deleted and
suspended things never returned; keyset pages stable under inserts (both ways); a SEARCH
behaviour event per search; filters; hostile queries refused or empty, never internal errors;
the product list's old ``search`` filter on the same index."""

from __future__ import annotations

import uuid
from typing import Any

from strawberry.relay import GlobalID

from models.accounts.users import Role, User
from models.commerce.catalog import DeliveryKind
from models.commerce.merchants import Category
from models.community.posts import ContentStatus, PostKind
from models.discovery.events import BehaviourEvent, EventKind
from resolvers.accounts.auth import Actor
from resolvers.commerce import catalog
from resolvers.community import moderation, posts
from resolvers.discovery import indexing, ingest
from tests.conftest import Client, count_queries, eventually
from tests.factories import add_keys, make_merchant, make_product, make_user, token_for

SEARCH = """query($q: String!, $filter: SearchFilter, $first: Int, $after: String, $last: Int, $before: String,
  $device: String) {
  search(query: $q, filter: $filter, first: $first, after: $after, last: $last, before: $before, deviceId: $device) {
    edges { cursor node { kind match product { id title } post { id title } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount } }"""


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def token() -> str:
    """A word of its own (letters only: jieba keeps an ASCII run whole), so tests sharing the
    database do not see each other's documents."""
    return "zq" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])


async def run(client: Client, query: str, **variables: Any) -> dict[str, Any]:
    body = (await client.post(SEARCH, {"q": query, **variables})).json()
    assert "errors" not in body, body
    return body["data"]["search"]


def titles(result: dict[str, Any]) -> list[str]:
    return [(e["node"]["product"] or e["node"]["post"])["title"] for e in result["edges"]]


async def searched(**where: Any) -> BehaviourEvent | None:
    """The SEARCH event matching ``where``, once its buffer's flush has written it."""
    return await BehaviourEvent.filter(kind=EventKind.SEARCH, **where).first()


async def shop_with_owner() -> tuple[Any, Actor]:
    owner = await make_user(Role.MERCHANT, "Owner")
    shop = await make_merchant(owner)
    return shop, Actor(user=owner)


async def product(owner: Actor, shop: Any, title: str, description: str = "", **fields: Any) -> Any:
    values = {"price": "10.00", "delivery_kind": DeliveryKind.DIRECT_TOPUP, **fields}
    return await catalog.create_product(owner, shop.id, catalog.ProductFields(title=title, description=description,
                                                                              **values))


async def test_segmented_chinese_title_above_body_and_a_search_event(client: Client) -> None:
    shop, owner = await shop_with_owner()
    in_title = await product(owner, shop, "王者荣耀点券 60元")
    in_body = await product(owner, shop, "手游充值", "支持王者荣耀点券秒到账")
    part = await product(owner, shop, "王者皮肤", "含点券礼包")
    await product(owner, shop, "原神创世结晶", "与点券无关的商品")
    device = uuid.uuid4().hex
    result = await run(client, "王者 点券", filter={"merchantId": gid("Merchant", shop.id)}, device=device)
    assert titles(result) == [in_title.title, part.title, in_body.title]
    assert [e["node"]["match"] for e in result["edges"]] == ["TITLE", "PART_TITLE", "BODY"]
    assert result["totalCount"] == 3
    # The whole word as one query, and a word of a description alone.
    assert titles(await run(client, "王者荣耀点券", filter={"merchantId": gid("Merchant", shop.id)}))[0] == in_title.title
    assert titles(await run(client, "秒到账")) == [in_body.title]
    await ingest.buffer().flush()  # buffered with the client's events, not written by the search
    event = await eventually(lambda: searched(device_id=device))
    assert event.query == "王者 点券" and event.user_id is None


async def test_shop_category_post_body_and_topics_are_searched(make_client: Any) -> None:
    word = token()
    shop, owner = await shop_with_owner()
    await shop.__class__.filter(id=shop.id).update(name=f"{word} 数码专营")
    category = await Category.create(name=f"{token()} 点卡", slug=f"c-{uuid.uuid4().hex[:12]}")
    made = await product(owner, shop, "月卡", category_id=category.id)
    author = await make_user(Role.BUYER, "Writer")
    topic = token()
    post = await posts.create_post(Actor(user=author), posts.NewPost(
        kind=PostKind.GUIDE, title="新手攻略", body=f"先买月卡再抽卡, 见 {word}", topics=[topic]))
    client = make_client()
    client.token = await token_for(await make_user(Role.BUYER, "Reader"))
    found = await run(client, word)
    assert sorted(titles(found)) == sorted([made.title, post.title])
    assert titles(await run(client, category.name.split()[0])) == [made.title]
    assert titles(await run(client, topic)) == [post.title]
    by_kind = await run(client, word, filter={"kind": "POST"})
    assert [e["node"]["kind"] for e in by_kind["edges"]] == ["POST"]
    await ingest.buffer().flush()
    assert (await eventually(lambda: searched(query=word))).user_id is not None


async def test_a_signed_in_first_page_only_reads(make_client: Any) -> None:
    """Its SEARCH event is buffered with the client's events: the search sends no transaction, lock or
    insert (before: BEGIN, the profiles' lock, the user's choice, the insert, COMMIT)."""
    word = token()
    shop, owner = await shop_with_owner()
    await product(owner, shop, f"点券 {word}")
    client = make_client()
    client.token = await token_for(await make_user(Role.BUYER, "Reader"))
    await run(client, token())  # the session's first request may refresh it: not the search's doing
    with count_queries() as queries:
        assert len((await run(client, word))["edges"]) == 1
    assert queries.count > 0
    assert [s for s in queries.statements if not s.lstrip().upper().startswith(("SELECT", "WITH"))] == []


async def test_edits_reindex_and_hidden_things_never_appear(make_client: Any) -> None:
    word = token()
    shop, owner = await shop_with_owner()
    made = await product(owner, shop, f"点券 {word}")
    stranger = make_client()
    assert titles(await run(stranger, word)) == [made.title]
    # An edit re-indexes in its transaction: the new title is found, the old one is not.
    fresh = token()
    await catalog.update_product(owner, made.id, catalog.ProductFields(title=f"点券 {fresh}"))
    assert titles(await run(stranger, word)) == [] and titles(await run(stranger, fresh)) == [f"点券 {fresh}"]
    # Hidden product: gone for everyone searching (the owner too, as in the public list).
    await catalog.update_product(owner, made.id, catalog.ProductFields(status="HIDDEN"))
    assert (await run(stranger, fresh))["edges"] == []
    await catalog.update_product(owner, made.id, catalog.ProductFields(status="ACTIVE"))
    assert len((await run(stranger, fresh))["edges"]) == 1
    # A suspended shop's products.
    await shop.__class__.filter(id=shop.id).update(status="SUSPENDED")
    assert (await run(stranger, fresh))["edges"] == []

    author_user = await make_user(Role.BUYER, "Author")
    author = make_client()
    author.token = await token_for(author_user)
    moderator = Actor(user=await make_user(Role.MODERATOR, "Mod"))
    shown = await posts.create_post(Actor(user=author_user), posts.NewPost(kind=PostKind.GUIDE, title=word, body="正文"))
    held = await posts.create_post(Actor(user=author_user), posts.NewPost(
        kind=PostKind.GUIDE, title=f"{word} 待审", body="kmholdword"))
    assert held.status == ContentStatus.HELD
    assert titles(await run(stranger, word)) == [shown.title]
    assert sorted(titles(await run(author, word))) == sorted([shown.title, held.title])  # the author's own
    await moderation.hide_content(moderator, moderation.Target("POST", shown.id), "spam")
    assert titles(await run(stranger, word)) == []
    await moderation.restore_content(moderator, moderation.Target("POST", shown.id), "ok")
    assert titles(await run(stranger, word)) == [shown.title]
    await posts.delete_post(Actor(user=author_user), shown.id)
    assert titles(await run(stranger, word)) == [] and titles(await run(author, word)) == [held.title]


async def test_keyset_pages_survive_inserts_both_ways(client: Client) -> None:
    word = token()
    shop, owner = await shop_with_owner()
    for i in range(3):
        await product(owner, shop, f"{word} 标题 {i}")
    for i in range(3):
        await product(owner, shop, f"充值 {i}", f"描述 {word}")
    first = await run(client, word, first=2)
    assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    # Inserted after the first page was read: one that would rank first and one that would rank last.
    await product(owner, shop, f"{word} 新标题")
    await product(owner, shop, "新充值", f"新描述 {word}")
    seen = titles(first)
    after = first["pageInfo"]["endCursor"]
    while after:
        page = await run(client, word, first=2, after=after)
        seen += titles(page)
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert len(seen) == len(set(seen))  # nothing repeated
    originals = [f"{word} 标题 {i}" for i in (2, 1, 0)] + [f"充值 {i}" for i in (2, 1, 0)]
    assert [t for t in seen if t in originals] == originals  # nothing skipped, the rank's order
    # The new body match ranks after the cursor (first of the BODY tier): reached. The new title
    # match ranks before it: not shown on later pages (it is on a fresh first page).
    assert seen.index("新充值") == seen.index("充值 2") - 1
    assert f"{word} 新标题" not in seen
    # Backward from the end: the same list reversed.
    forward = [e["cursor"] for e in (await run(client, word, first=100))["edges"]]
    backward: list[str] = []
    before = None
    while True:
        page = await run(client, word, last=3, before=before)
        backward = [e["cursor"] for e in page["edges"]] + backward
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert backward == forward and len(forward) == 8


async def test_filters(client: Client) -> None:
    word = token()
    shop, owner = await shop_with_owner()
    other_shop, other_owner = await shop_with_owner()
    category = await Category.create(name="话费", slug=f"c-{uuid.uuid4().hex[:12]}")
    cheap = await product(owner, shop, f"{word} 便宜", price="5.00", category_id=category.id)
    dear = await product(owner, shop, f"{word} 贵", price="100.00")
    sold_out = await product(owner, shop, f"{word} 售罄", price="20.00", stock_limit=0)
    keyed = await product(other_owner, other_shop, f"{word} 卡密", price="9.90", delivery_kind=DeliveryKind.CARD_KEY)
    await add_keys(keyed, 1)
    empty_keys = await product(other_owner, other_shop, f"{word} 无卡", delivery_kind=DeliveryKind.CARD_KEY)
    author = await make_user(Role.BUYER, "Poster")
    await posts.create_post(Actor(user=author), posts.NewPost(kind=PostKind.GUIDE, title=word, body="价格"))

    def names(*items: Any) -> list[str]:
        return sorted(i.title for i in items)

    async def found(**filter: Any) -> list[str]:
        return sorted(titles(await run(client, word, filter=filter)))

    assert len(await found()) == 6
    assert await found(kind="PRODUCT") == names(cheap, dear, sold_out, keyed, empty_keys)
    assert await found(minPrice="9.90", maxPrice="20.00") == names(sold_out, keyed, empty_keys)
    assert await found(maxPrice="9.90") == names(cheap, keyed)
    assert await found(categoryId=gid("Category", category.id)) == names(cheap)
    assert await found(merchantId=gid("Merchant", other_shop.id)) == names(keyed, empty_keys)
    assert await found(inStock=True) == names(cheap, dear, keyed)
    assert await found(inStock=False) == names(sold_out, empty_keys)
    for bad in ({"kind": "POST", "maxPrice": "5.00"}, {"minPrice": "9", "maxPrice": "1"}, {"minPrice": "-1"},
                {"maxPrice": "abc"}, {"categoryId": "nope"}):
        body = (await client.post(SEARCH, {"q": word, "filter": bad})).json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"], (bad, body)


async def test_hostile_queries_are_refused_or_empty(client: Client) -> None:
    shop, owner = await shop_with_owner()
    await product(owner, shop, "王者荣耀点券 NEAR 星号")
    hostile = ['"', '""', "*", "王者*", "NEAR(", "NEAR(王者 点券, 2)", "OR", "王者 OR", "AND NOT", "title:王者",
               "{title}: 点券", "^王者", "'; DROP TABLE product; --", "王者 & | ! 点券", "\\", "\x00\x01\x1f",
               "王者\x00点券", "( ) : - + ~", "a" * 100, " ", "", "的 了 是"]
    refused = set()
    for query in hostile:
        body = (await client.post(SEARCH, {"q": query})).json()
        if "errors" in body:  # NUL: refused by the API's rule for all text
            assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"], (query, body)
            refused.add(query)
        else:
            assert isinstance(body["data"]["search"]["edges"], list)
    assert refused == {"\x00\x01\x1f", "王者\x00点券"}
    for query in ["王" * 101, "x" * 100_000]:
        body = (await client.post(SEARCH, {"q": query})).json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"], body
    for cursor in ["nope", "W10", "WyJzZWFyY2giLDksMV0"]:  # not base64 json; []; ["search",9,1]
        body = (await client.post(SEARCH, {"q": "点券", "after": cursor})).json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"], body
    body = (await client.post(SEARCH, {"q": "点券", "device": "d" * 65})).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"], body


async def test_product_list_search_uses_the_index_and_the_sweep_indexes_strays(client: Client) -> None:
    shop, owner = await shop_with_owner()
    word = token()
    made = await product(owner, shop, "王者荣耀点券", f"说明 {word}")
    query = "query($s: String) { products(filter: {search: $s}, first: 10) { edges { node { title } } } }"
    body = (await client.post(query, {"s": word})).json()
    assert [e["node"]["title"] for e in body["data"]["products"]["edges"]] == [made.title]
    # Written around the use cases (a seed): found once the backstop sweep has run.
    stray = await make_product(shop)
    stray_word = stray.title.split()[1]
    assert (await run(client, stray_word))["edges"] == []
    while await indexing.index_missing():
        pass
    assert titles(await run(client, stray_word)) == [stray.title]
    assert await User.filter(id=owner.user.id).exists()
