"""Community: posts of every kind, reviews and the product's rating, showcases, topics,
threaded comments, likes under concurrency, answers, demands and purchaser circles."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from strawberry.relay import GlobalID

from models.accounts.users import Role, User
from models.commerce.catalog import Product
from models.community.comments import Comment
from models.community.follows import Follow, FollowKind
from models.community.posts import Post
from models.community.reactions import PostLike
from models.community.topics import PostTopic, Topic
from models.accounts.notifications import Notification
from models.commerce.orders import Order, OrderStatus
from models.outbox import OutboxEntry, OutboxKind
from resolvers.community.comments import MAX_DEPTH
from resolvers.commerce.orders import new_order_no
from subscriptions.jobs import JobName
from subscriptions.topics import LIVE_POSTS
from tests.conftest import Client, count_queries
from tests.factories import make_merchant, make_product, make_user, make_users, token_for

CREATE_POST = """mutation($input: CreatePostInput!) { createPost(input: $input) {
  errors { code field message }
  post { id kind title body bodyHtml rating verifiedPurchase status likeCount commentCount
         author { id nickname } product { id rating reviewCount } topics { slug isCircle } } } }"""
EDIT_POST = """mutation($input: EditPostInput!) { editPost(input: $input) {
  errors { code field } post { id title rating editedAt status } } }"""
DELETE_POST = """mutation($input: DeletePostInput!) { deletePost(input: $input) { errors { code } post { status } } }"""
ADD_COMMENT = """mutation($input: AddCommentInput!) { addComment(input: $input) {
  errors { code field message } comment { id depth body bodyHtml status parent { id } post { id } product { id } } } }"""
LIKE = """mutation($input: LikePostInput!) { likePost(input: $input) {
  errors { code } post { likeCount viewerHasLiked } } }"""
UNLIKE = """mutation($input: UnlikePostInput!) { unlikePost(input: $input) {
  errors { code } post { likeCount viewerHasLiked } } }"""
LIKE_COMMENT = """mutation($input: LikeCommentInput!) { likeComment(input: $input) {
  errors { code } comment { likeCount viewerHasLiked } } }"""
UNLIKE_COMMENT = """mutation($input: UnlikeCommentInput!) { unlikeComment(input: $input) {
  errors { code } comment { likeCount viewerHasLiked } } }"""
POST = """query($id: ID!) { post(id: $id) { id title status likeCount commentCount viewerHasLiked
  acceptedAnswer { id } chosenReply { id } fulfilledBy { id } } }"""
COMMENTS = """query($id: ID!, $sort: CommentSort, $first: Int, $after: String) { post(id: $id) {
  comments(first: $first, after: $after, sort: $sort) { edges { cursor node { id depth likeCount } }
  pageInfo { hasNextPage endCursor } } } }"""
PRODUCT = """query($id: ID!) { product(id: $id) { id rating reviewCount buyerCount
  circle { id slug isCircle product { id } }
  posts(first: 10) { edges { node { id kind verifiedPurchase } } } } }"""
JOIN = """mutation($input: JoinCircleInput!) { joinCircle(input: $input) {
  errors { code } circle { id slug viewerIsMember } } }"""
ACCEPT = """mutation($input: AcceptAnswerInput!) { acceptAnswer(input: $input) {
  errors { code field } post { acceptedAnswer { id } } } }"""
FULFIL = """mutation($input: FulfilDemandInput!) { fulfilDemand(input: $input) {
  errors { code field } post { fulfilledBy { id } chosenReply { id } } } }"""


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def signed_in(make_client, role: Role = Role.BUYER, nickname: str = "Buyer") -> tuple[Client, User]:  # type: ignore[no-untyped-def]
    user = await make_user(role, nickname)
    client = make_client()
    client.token = await token_for(user)
    return client, user


async def delivered_order(buyer: User, product: Product, status: OrderStatus = OrderStatus.DELIVERED) -> Order:
    now = datetime.now(UTC)
    return await Order.create(
        order_no=new_order_no(), buyer=buyer, product=product, merchant_id=product.merchant_id, quantity=1,
        unit_price=product.price, total=product.price, idempotency_scope=f"u:{buyer.id}",
        idempotency_key=uuid.uuid4().hex, expires_at=now, status=status,
        delivered_at=now if status in (OrderStatus.DELIVERED, OrderStatus.COMPLETED) else None,
    )


async def create_post(client: Client, **fields: Any) -> dict[str, Any]:
    values = {"kind": "GUIDE", "title": "A title", "body": "Some *body*", **fields}
    return (await client.gql(CREATE_POST, {"input": values}))["createPost"]


async def new_post(client: Client, **fields: Any) -> dict[str, Any]:
    payload = await create_post(client, **fields)
    assert payload["errors"] == [], payload
    return payload["post"]


async def add_comment(client: Client, post_id: str, body: str = "Nice", **fields: Any) -> dict[str, Any]:
    payload = (await client.gql(ADD_COMMENT, {"input": {"postId": post_id, "body": body, **fields}}))["addComment"]
    return payload


# -- reviews and showcases --------------------------------------------------------------


async def test_review_by_verified_buyer_moves_rating_and_non_buyer_is_not_verified(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    buyer_client, buyer = await signed_in(make_client)
    await delivered_order(buyer, product)
    stranger, _ = await signed_in(make_client)

    verified = await new_post(buyer_client, kind="REVIEW", productId=gid("Product", product.id), rating=4,
                              title="Works", body="Key arrived at once")
    assert verified["verifiedPurchase"] is True and verified["rating"] == 4
    assert verified["product"] == {"id": gid("Product", product.id), "rating": 4.0, "reviewCount": 1}

    unverified = await new_post(stranger, kind="REVIEW", productId=gid("Product", product.id), rating=1,
                                title="Bad", body="Never bought it")
    assert unverified["verifiedPurchase"] is False
    seen = (await stranger.gql(PRODUCT, {"id": gid("Product", product.id)}))["product"]
    assert seen["rating"] == 4.0 and seen["reviewCount"] == 1  # only verified reviews count
    assert seen["buyerCount"] == 1
    kinds = {(e["node"]["kind"], e["node"]["verifiedPurchase"]) for e in seen["posts"]["edges"]}
    assert kinds == {("REVIEW", True), ("REVIEW", False)}

    # A second review of the same product by the same author is refused.
    again = await create_post(buyer_client, kind="REVIEW", productId=gid("Product", product.id), rating=5)
    assert again["errors"][0]["code"] == "DUPLICATE"

    # Editing the rating moves the product; deleting the review takes it out once.
    edited = (await buyer_client.gql(EDIT_POST, {"input": {"postId": verified["id"], "rating": 2}}))["editPost"]
    assert edited["errors"] == [] and edited["post"]["rating"] == 2 and edited["post"]["editedAt"]
    await product.refresh_from_db()
    assert (product.rating_sum, product.review_count) == (2, 1)
    deleted = (await buyer_client.gql(DELETE_POST, {"input": {"postId": verified["id"]}}))["deletePost"]
    assert deleted["errors"] == [] and deleted["post"]["status"] == "DELETED"
    again = (await buyer_client.gql(DELETE_POST, {"input": {"postId": verified["id"]}}))["deletePost"]
    assert again["errors"][0]["code"] == "NOT_FOUND"
    await product.refresh_from_db()
    assert (product.rating_sum, product.review_count) == (0, 0)
    assert (await stranger.gql(POST, {"id": verified["id"]}))["post"] is None


async def test_showcase_of_own_delivered_order_only(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    owner_client, owner = await signed_in(make_client)
    other_client, other = await signed_in(make_client)
    order = await delivered_order(owner, product, OrderStatus.COMPLETED)
    pending = await delivered_order(owner, product, OrderStatus.PAID)

    refused = await create_post(other_client, kind="SHOWCASE", orderId=gid("Order", order.id))
    assert refused["errors"][0]["code"] in ("FORBIDDEN", "NOT_FOUND") and refused["post"] is None
    not_yet = await create_post(owner_client, kind="SHOWCASE", orderId=gid("Order", pending.id))
    assert not_yet["errors"][0]["code"] == "INVALID_STATE"
    missing = await create_post(owner_client, kind="SHOWCASE")
    assert missing["errors"][0]["field"] == "orderId"

    showcase = await new_post(owner_client, kind="SHOWCASE", orderId=gid("Order", order.id), title="晒单",
                              body="Got it in seconds")
    assert showcase["product"]["id"] == gid("Product", product.id) and showcase["verifiedPurchase"] is True
    assert "KEY-" not in str(showcase)
    twice = await create_post(owner_client, kind="SHOWCASE", orderId=gid("Order", order.id))
    assert twice["errors"][0]["code"] == "DUPLICATE"

    post_id = pk(showcase["id"])
    jobs = await OutboxEntry.filter(kind=OutboxKind.JOB).all()
    mine = [j for j in jobs if j.payload["kwargs"].get("post_id") == post_id
            or j.payload["kwargs"].get("reference") == f"post:{post_id}"]
    names = sorted((j.topic, j.payload["kwargs"].get("event")) for j in mine)
    assert ("fan_out_post", None) in names
    assert ("loyalty_event", "SHOWCASE_CREATED") in names and ("loyalty_event", "POST_CREATED") in names
    showcase_job = next(j for j in mine if j.payload["kwargs"].get("event") == "SHOWCASE_CREATED")
    assert showcase_job.payload["kwargs"] == {
        "user_id": owner.id, "event": "SHOWCASE_CREATED", "reference": f"post:{post_id}", "order_id": order.id,
    }
    live = await OutboxEntry.filter(kind=OutboxKind.EVENT, topic="posts:live").all()
    assert any(e.payload == {"post": post_id, "topics": []} for e in live)
    assert other.id != owner.id


async def test_bad_input_changes_nothing(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    client, user = await signed_in(make_client)
    posts, topics = await Post.all().count(), await Topic.all().count()
    last_row = await OutboxEntry.all().order_by("-id").first().values_list("id", flat=True) or 0
    cases = [
        ({"kind": "REVIEW", "productId": gid("Product", product.id)}, "rating"),
        ({"kind": "REVIEW", "productId": gid("Product", product.id), "rating": 6}, "rating"),
        ({"kind": "REVIEW", "rating": 3}, "productId"),
        ({"kind": "GUIDE", "rating": 3}, "rating"),
        ({"kind": "GUIDE", "productId": "not-an-id"}, "productId"),
        ({"kind": "GUIDE", "productId": gid("Order", 1)}, "productId"),
        ({"kind": "GUIDE", "title": "   "}, "title"),
        ({"kind": "GUIDE", "body": "x" * 20_001}, "body"),
        ({"kind": "GUIDE", "topics": ["a", "b", "c", "d", "e", "f"]}, "topics"),
        ({"kind": "GUIDE", "topic": "new-topic", "topics": ["bad topic!"]}, "topics"),
        ({"kind": "GUIDE", "topic": "fresh-topic", "body": "kmblockword here"}, "body"),
    ]
    for fields, field in cases:
        payload = await create_post(client, **fields)
        assert payload["post"] is None and payload["errors"][0]["field"] == field, (fields, payload)
        assert payload["errors"][0]["code"] == "INVALID_INPUT", payload
    missing = await create_post(client, kind="GUIDE", productId=gid("Product", 10**12))
    assert missing["errors"][0]["code"] == "NOT_FOUND"
    anonymous = await create_post(make_client())
    assert anonymous["errors"][0]["code"] == "UNAUTHENTICATED"
    assert (await Post.all().count(), await Topic.all().count()) == (posts, topics)
    # The rows a post would write, not a count of the table: the stack's sweeps and other tests'
    # deliveries write outbox rows meanwhile.
    written = await OutboxEntry.filter(id__gt=last_row).values_list("topic", "payload")
    assert [(topic, payload) for topic, payload in written
            if topic in (LIVE_POSTS, JobName.FAN_OUT_POST.value)
            or (topic == JobName.LOYALTY_EVENT.value and payload["kwargs"]["user_id"] == user.id)] == []
    assert user.id


async def test_topics_created_on_first_use_and_filtered(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = await signed_in(make_client)
    slug = f"steam-{uuid.uuid4().hex[:6]}"
    first = await new_post(client, topic=slug.upper(), topics=["#Guides", slug])
    assert [t["slug"] for t in first["topics"]] == [slug, "guides"]
    second = await new_post(client, topics=[slug])
    assert await Topic.filter(slug=slug).count() == 1
    assert (await Topic.get(slug=slug)).post_count == 2
    data = await client.gql("""query($t: String) { posts(first: 10, filter: {topic: $t}) { edges { node { id } } } }""",
                            {"t": slug})
    assert [e["node"]["id"] for e in data["posts"]["edges"]] == [second["id"], first["id"]]
    topic = await client.gql("query($s: String!) { topic(slug: $s) { slug postCount posts { edges { node { id } } } } }",
                             {"s": slug})
    assert topic["topic"]["postCount"] == 2 and len(topic["topic"]["posts"]["edges"]) == 2


async def test_posts_list_is_batched(make_client) -> None:  # type: ignore[no-untyped-def]
    """20 posts with author, product card, topics and like state cost what 1 post costs."""
    viewer, viewer_user = await signed_in(make_client)
    prefix = f"n1-{uuid.uuid4().hex[:6]}"
    shared = await Topic.create(slug=prefix, name=prefix)
    for i, author in enumerate(await make_users(20)):
        post = await Post.create(author=author, kind="GUIDE", title=f"P{i}", body="b", body_html="<p>b</p>",
                                 product=await make_product())
        await PostTopic.create(post=post, topic=shared)
        await PostTopic.create(post=post, topic=await Topic.create(slug=f"{prefix}-{i}", name="t"))
        if i % 2:
            await PostLike.create(user=viewer_user, post=post)
    query = """query($n: Int) { posts(first: $n) { edges { node { id title likeCount commentCount viewerHasLiked
      author { id nickname } product { id title merchant { id name } } topics { slug } } } } }"""
    await viewer.gql(query, {"n": 1})  # warm-up
    with count_queries() as one:
        small = await viewer.gql(query, {"n": 1})
    with count_queries() as twenty:
        big = await viewer.gql(query, {"n": 20})
    assert len(small["posts"]["edges"]) == 1 and len(big["posts"]["edges"]) == 20
    assert sum(e["node"]["viewerHasLiked"] for e in big["posts"]["edges"]) == 10
    assert all(len(e["node"]["topics"]) == 2 for e in big["posts"]["edges"])
    assert twenty.count == one.count, (one.statements, twenty.statements)


# -- comments ---------------------------------------------------------------------------


async def test_threads_paths_depth_cap_and_sorts(make_client) -> None:  # type: ignore[no-untyped-def]
    author, _ = await signed_in(make_client)
    replier, _ = await signed_in(make_client)
    post = await new_post(author)
    top = await add_comment(replier, post["id"], "first")
    assert top["errors"] == [] and top["comment"]["depth"] == 0
    chain = [top["comment"]]
    for i in range(MAX_DEPTH + 1):  # two past the cap
        reply = await add_comment(replier if i % 2 else author, post["id"], f"reply {i}", parentId=chain[-1]["id"])
        assert reply["errors"] == [], reply
        chain.append(reply["comment"])
    depths = [c["depth"] for c in chain]
    assert depths == [*range(MAX_DEPTH), MAX_DEPTH - 1, MAX_DEPTH - 1]
    # Past the cap a reply continues beside the comment replied to (same parent).
    assert chain[-1]["parent"]["id"] == chain[-2]["parent"]["id"] == chain[MAX_DEPTH - 2]["id"]
    rows = await Comment.filter(post_id=pk(post["id"])).order_by("id")
    for row in rows:
        assert row.path.split(".")[-1] == f"{row.id:010d}" and len(row.path.split(".")) == row.depth + 1
    second = await add_comment(author, post["id"], "second top-level")

    thread = (await author.gql(COMMENTS, {"id": post["id"], "sort": "THREAD", "first": 100}))["post"]["comments"]
    ids = [e["node"]["id"] for e in thread["edges"]]
    assert ids[0] == top["comment"]["id"] and ids[-1] == second["comment"]["id"]  # depth-first
    # Keyset paging through the thread gives the same order.
    paged, after = [], None
    while True:
        page = (await author.gql(COMMENTS, {"id": post["id"], "sort": "THREAD", "first": 4, "after": after}))
        conn = page["post"]["comments"]
        paged += [e["node"]["id"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert paged == ids

    liked = (await replier.gql(LIKE_COMMENT, {"input": {"commentId": second["comment"]["id"]}}))["likeComment"]
    assert liked["comment"] == {"likeCount": 1, "viewerHasLiked": True}
    again = (await replier.gql(LIKE_COMMENT, {"input": {"commentId": second["comment"]["id"]}}))["likeComment"]
    assert again["errors"] == [] and again["comment"]["likeCount"] == 1
    top_sorted = (await author.gql(COMMENTS, {"id": post["id"], "sort": "TOP"}))["post"]["comments"]["edges"]
    assert top_sorted[0]["node"]["id"] == second["comment"]["id"]
    hot = (await author.gql(COMMENTS, {"id": post["id"], "sort": "HOT"}))["post"]["comments"]["edges"]
    assert hot[0]["node"]["id"] == second["comment"]["id"]  # liked and newest
    new = (await author.gql(COMMENTS, {"id": post["id"], "sort": "NEW"}))["post"]["comments"]["edges"]
    assert new[0]["node"]["id"] == second["comment"]["id"] and len(new) == len(ids)
    unliked = (await replier.gql(UNLIKE_COMMENT, {"input": {"commentId": second["comment"]["id"]}}))["unlikeComment"]
    assert unliked["comment"] == {"likeCount": 0, "viewerHasLiked": False}

    too_many = await author.post(COMMENTS, {"id": post["id"], "first": 101})
    assert "errors" in too_many.json()
    count = (await author.gql(POST, {"id": post["id"]}))["post"]["commentCount"]
    assert count == len(ids)

    wrong_parent = await add_comment(author, (await new_post(author))["id"], "x", parentId=top["comment"]["id"])
    assert wrong_parent["errors"][0]["code"] == "NOT_FOUND"


async def test_replies_and_mentions_notify_and_publish(make_client) -> None:  # type: ignore[no-untyped-def]
    nick = f"mia{uuid.uuid4().hex[:6]}"
    author, author_user = await signed_in(make_client, nickname="Author")
    first, first_user = await signed_in(make_client)
    _, mentioned_user = await signed_in(make_client, nickname=nick)
    post = await new_post(author)
    top = (await add_comment(first, post["id"], "hello"))["comment"]
    reply = await add_comment(author, post["id"], f"thanks @{nick} and @nobody-{nick} and @{nick}", parentId=top["id"])
    assert reply["errors"] == []
    reply_id = pk(reply["comment"]["id"])
    # The post's author replying to a comment notifies the comment's author, not themself.
    notes = await Notification.filter(kind__in=["REPLY", "MENTION"]).all()
    kinds = sorted((n.user_id, n.kind) for n in notes if n.data.get("commentId") == reply_id)
    assert kinds == sorted([(first_user.id, "REPLY"), (mentioned_user.id, "MENTION")])
    top_notes = [n for n in notes if n.data.get("commentId") == pk(top["id"])]
    assert [(n.user_id, n.kind) for n in top_notes] == [(author_user.id, "REPLY")]
    events = {e.topic for e in await OutboxEntry.filter(kind=OutboxKind.EVENT).all()
              if e.payload.get("comment") == reply_id}
    assert events == {f"post:{pk(post['id'])}:comments", f"user:{first_user.id}:replies"}


async def test_markdown_is_rendered_and_links_are_safe(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = await signed_in(make_client)
    post = await new_post(client, body="**bold** [site](https://example.com)")
    assert post["bodyHtml"] == (
        '<p><strong>bold</strong> <a href="https://example.com" rel="nofollow noopener">site</a></p>'
    )
    assert post["body"] == "**bold** [site](https://example.com)"


# -- likes ------------------------------------------------------------------------------


async def test_a_thousand_concurrent_likes_count_exactly(make_client) -> None:  # type: ignore[no-untyped-def]
    author, _ = await signed_in(make_client)
    post = await new_post(author)
    users = await make_users(1000)
    tokens = [await token_for(u) for u in users]
    client = make_client()
    gate = asyncio.Semaphore(100)

    async def like(token: str) -> dict[str, Any]:
        async with gate:
            return (await client.gql(LIKE, {"input": {"postId": post["id"]}}, token=token))["likePost"]

    results = await asyncio.gather(*(like(t) for t in tokens))
    assert all(r["errors"] == [] and r["post"]["viewerHasLiked"] for r in results)
    assert (await Post.get(id=pk(post["id"]))).like_count == 1000
    assert await PostLike.filter(post_id=pk(post["id"])).count() == 1000

    # One user liking again, even concurrently, counts once; unliking twice uncounts once.
    repeat = await asyncio.gather(*(like(tokens[0]) for _ in range(10)))
    assert all(r["errors"] == [] and r["post"]["likeCount"] == 1000 for r in repeat)
    unlike = await asyncio.gather(*(
        client.gql(UNLIKE, {"input": {"postId": post["id"]}}, token=tokens[0]) for _ in range(5)))
    assert all(u["unlikePost"]["errors"] == [] for u in unlike)
    seen = (await client.gql(POST, {"id": post["id"]}, token=tokens[0]))["post"]
    assert seen["likeCount"] == 999 and seen["viewerHasLiked"] is False
    loyalty = await OutboxEntry.filter(kind=OutboxKind.JOB, topic="loyalty_event").all()
    received = [j for j in loyalty if str(j.payload["kwargs"].get("reference", "")).startswith(f"like:post:{pk(post['id'])}:")]
    assert len(received) == 1000


async def test_like_errors(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = await signed_in(make_client)
    bad = (await client.gql(LIKE, {"input": {"postId": "garbage"}}))["likePost"]
    assert bad["errors"][0]["code"] == "INVALID_INPUT"
    missing = (await client.gql(LIKE, {"input": {"postId": gid("Post", 10**12)}}))["likePost"]
    assert missing["errors"][0]["code"] == "NOT_FOUND"
    post = await new_post(client)
    anonymous = (await make_client().gql(LIKE, {"input": {"postId": post["id"]}}))["likePost"]
    assert anonymous["errors"][0]["code"] == "UNAUTHENTICATED"


# -- questions, demands, circles --------------------------------------------------------


async def test_question_answer_is_accepted_by_the_author_once(make_client) -> None:  # type: ignore[no-untyped-def]
    asker, _ = await signed_in(make_client)
    helper, helper_user = await signed_in(make_client)
    question = await new_post(asker, kind="QUESTION", title="How to redeem?")
    own = (await add_comment(asker, question["id"], "bump"))["comment"]
    answer = (await add_comment(helper, question["id"], "Settings > Redeem"))["comment"]
    not_author = (await helper.gql(ACCEPT, {"input": {"postId": question["id"], "commentId": answer["id"]}}))
    assert not_author["acceptAnswer"]["errors"][0]["code"] == "FORBIDDEN"
    self_accept = (await asker.gql(ACCEPT, {"input": {"postId": question["id"], "commentId": own["id"]}}))
    assert self_accept["acceptAnswer"]["errors"][0]["code"] == "INVALID_INPUT"
    accepted = (await asker.gql(ACCEPT, {"input": {"postId": question["id"], "commentId": answer["id"]}}))
    assert accepted["acceptAnswer"] == {"errors": [], "post": {"acceptedAnswer": {"id": answer["id"]}}}
    again = (await asker.gql(ACCEPT, {"input": {"postId": question["id"], "commentId": answer["id"]}}))
    assert again["acceptAnswer"]["errors"] == []
    jobs = [j for j in await OutboxEntry.filter(topic="loyalty_event").all()
            if j.payload["kwargs"]["event"] == "ANSWER_ACCEPTED" and j.payload["kwargs"]["user_id"] == helper_user.id]
    assert len(jobs) == 1
    guide = await new_post(asker)
    wrong_kind = (await asker.gql(ACCEPT, {"input": {"postId": guide["id"], "commentId": answer["id"]}}))
    assert wrong_kind["acceptAnswer"]["errors"][0]["code"] == "INVALID_STATE"


async def test_demand_answered_by_a_merchant_product(make_client) -> None:  # type: ignore[no-untyped-def]
    wanter, _ = await signed_in(make_client)
    shop_client, shop_owner = await signed_in(make_client, Role.MERCHANT, "Shop")
    product = await make_product(await make_merchant(shop_owner))
    foreign = await make_product()
    demand = await new_post(wanter, kind="DEMAND", title="Need a 100 yuan card")
    not_theirs = await add_comment(shop_client, demand["id"], "this one", productId=gid("Product", foreign.id))
    assert not_theirs["errors"][0]["code"] == "FORBIDDEN"
    offer = await add_comment(shop_client, demand["id"], "Here you go", productId=gid("Product", product.id))
    assert offer["errors"] == [] and offer["comment"]["product"]["id"] == gid("Product", product.id)
    plain = (await add_comment(wanter, demand["id"], "thanks"))["comment"]
    no_product = (await wanter.gql(FULFIL, {"input": {"postId": demand["id"], "commentId": plain["id"]}}))
    assert no_product["fulfilDemand"]["errors"][0]["field"] == "commentId"
    done = (await wanter.gql(FULFIL, {"input": {"postId": demand["id"], "commentId": offer["comment"]["id"]}}))
    assert done["fulfilDemand"]["errors"] == []
    assert done["fulfilDemand"]["post"]["fulfilledBy"]["id"] == gid("Product", product.id)
    jobs = [j.payload["kwargs"] for j in await OutboxEntry.filter(topic="loyalty_event").all()
            if j.payload["kwargs"]["event"] == "DEMAND_FULFILLED" and j.payload["kwargs"]["reference"] == f"demand:{pk(demand['id'])}"]
    assert jobs == [{"user_id": shop_owner.id, "event": "DEMAND_FULFILLED", "reference": f"demand:{pk(demand['id'])}"}]
    guide = await new_post(wanter)
    misplaced = await add_comment(shop_client, guide["id"], "buy", productId=gid("Product", product.id))
    assert misplaced["errors"][0]["code"] == "INVALID_INPUT"


async def test_purchaser_circle(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    buyer_client, buyer = await signed_in(make_client)
    stranger, _ = await signed_in(make_client)
    await delivered_order(buyer, product)
    await delivered_order(buyer, product, OrderStatus.COMPLETED)  # still one buyer
    await delivered_order(await make_user(), product, OrderStatus.PAID)  # not delivered: not counted

    refused = (await stranger.gql(JOIN, {"input": {"productId": gid("Product", product.id)}}))["joinCircle"]
    assert refused["errors"][0]["code"] == "FORBIDDEN"
    joined = (await buyer_client.gql(JOIN, {"input": {"productId": gid("Product", product.id)}}))["joinCircle"]
    assert joined["errors"] == [] and joined["circle"]["slug"] == f"circle-{product.id}"
    assert joined["circle"]["viewerIsMember"] is True
    twice = (await buyer_client.gql(JOIN, {"input": {"productId": gid("Product", product.id)}}))["joinCircle"]
    assert twice["errors"] == []
    topic = await Topic.get(slug=f"circle-{product.id}")
    assert await Follow.filter(follower_id=buyer.id, kind=FollowKind.TOPIC, target_id=topic.id).count() == 1

    seen = (await stranger.gql(PRODUCT, {"id": gid("Product", product.id)}))["product"]
    assert seen["buyerCount"] == 1
    assert seen["circle"] == {"id": gid("Topic", topic.id), "slug": topic.slug, "isCircle": True,
                              "product": {"id": gid("Product", product.id)}}
    # Only buyers talk in the circle.
    outsider = await create_post(stranger, topic=topic.slug)
    assert outsider["errors"][0]["code"] == "FORBIDDEN"
    inside = await new_post(buyer_client, topic=topic.slug)
    assert inside["topics"] == [{"slug": topic.slug, "isCircle": True}]
