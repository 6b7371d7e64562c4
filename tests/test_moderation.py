"""Safety: no script or script link comes back out of a post or comment, the sensitive-word
filter (block / mask / hold), reports and the moderators' queue, hide / restore / release
with an audit trail, and posting rate limits (stricter for new accounts)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from models.accounts.users import Role, User
from models.community.moderation import ModerationAction, Report
from models.community.posts import ContentStatus, Post
from models.outbox import OutboxEntry, OutboxKind
from resolvers.community import content
from tests.conftest import Client
from tests.test_community import (
    ADD_COMMENT,
    CREATE_POST,
    POST,
    add_comment,
    create_post,
    delivered_order,
    gid,
    new_post,
    pk,
    signed_in,
)
from tests.factories import make_product, token_for

NASTY = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "<iframe src=javascript:alert(1)></iframe>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click]( javascript:alert(1) )",
    "[click](java\tscript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;avascript&#x3A;alert(1))",
    "[click](&amp;#106;avascript:alert(1))",
    "[click](<javascript:alert(1)>)",
    "[click][ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "![img](javascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "`<script>`\n\n```\n<script>alert(1)</script>\n```",
    "<div onmouseover='alert(1)'>hover</div>",
    "<!-- --><script>alert(1)</script>",
]
_EVENT_ATTRIBUTE = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


def assert_harmless(text: str) -> None:
    lowered = text.lower()
    assert "<script" not in lowered, text
    assert "javascript:" not in lowered and "vbscript:" not in lowered, text
    assert "data:text" not in lowered, text
    assert not _EVENT_ATTRIBUTE.search(text), text
    assert "<iframe" not in lowered and "<svg" not in lowered, text


# -- script never comes back ------------------------------------------------------------


async def test_no_script_comes_back_out_of_posts_or_comments(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = await signed_in(make_client)
    other, _ = await signed_in(make_client)
    post = await new_post(client, title="<script>alert(1)</script> [x](javascript:alert(1))", body="hello")
    assert_harmless(post["title"])
    for payload in NASTY:
        created = await new_post(client, body=payload)
        for field in ("body", "bodyHtml"):
            assert_harmless(created[field])
        comment = await add_comment(other, post["id"], payload)
        assert comment["errors"] == [], comment
        for field in ("body", "bodyHtml"):
            assert_harmless(comment["comment"][field])
    # Read back by someone else, too.
    listed = await other.gql("""query($id: ID!) { post(id: $id) { title comments(first: 100) {
      edges { node { body bodyHtml } } } } }""", {"id": post["id"]})
    edges = listed["post"]["comments"]["edges"]
    assert len(edges) == len(NASTY)
    for edge in edges:
        assert_harmless(edge["node"]["body"])
        assert_harmless(edge["node"]["bodyHtml"])


@pytest.mark.parametrize("payload", NASTY)
def test_cleaning_and_rendering_are_harmless(payload: str) -> None:
    cleaned = content.clean_markdown(payload, "body", maximum=10_000)
    assert_harmless(cleaned)
    assert_harmless(content.render(cleaned))
    assert content.clean_markdown(cleaned, "body", maximum=10_000) == cleaned  # stable when edited back


def test_safe_markdown_survives() -> None:
    source = "# Title\n\n**bold** _it_ `a < b` [ok](https://example.com) <https://example.org/x> a < b"
    cleaned = content.clean_markdown(source, "body", maximum=1000)
    assert cleaned == source
    html = content.render(cleaned)
    assert '<a href="https://example.com" rel="nofollow noopener">ok</a>' in html
    assert '<a href="https://example.org/x" rel="nofollow noopener">' in html
    assert "<h1>Title</h1>" in html and "<code>a &lt; b</code>" in html


# -- the sensitive-word filter ----------------------------------------------------------


def test_word_list_parsing() -> None:
    words = content.parse_words("Bad:block, meh:MASK\n# a comment\nhmm:hold  ")
    assert words == content.WordList(block=("Bad",), mask=("meh",), hold=("hmm",))
    with pytest.raises(ValueError):
        content.parse_words("word:explode")
    screened = content.screen({"body": "so MEH and bad"}, content.parse_words("meh:mask"))
    assert screened.texts["body"] == "so *** and bad" and screened.hold_words == ()


async def test_blocked_word_is_refused_with_a_clear_error(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = await signed_in(make_client)
    before = await Post.all().count()
    refused = await create_post(client, body="buy KMBlockWord now")
    assert refused["post"] is None
    (error,) = refused["errors"]
    assert error["code"] == "INVALID_INPUT" and error["field"] == "body"
    assert "not allowed" in error["message"] and "KMBlockWord" in error["message"]
    in_title = await create_post(client, title="kmblockword")
    assert in_title["errors"][0]["field"] == "title"
    assert await Post.all().count() == before
    post = await new_post(client)
    comment = await add_comment(client, post["id"], "&#107;mblockword")  # hidden behind a reference
    assert comment["errors"][0]["code"] == "INVALID_INPUT"


async def test_masked_word_is_starred(make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = await signed_in(make_client)
    post = await new_post(client, title="a KmMaskWord title", body="some kmmaskword text")
    assert post["title"] == "a *** title" and post["body"] == "some *** text" and post["status"] == "VISIBLE"
    comment = (await add_comment(client, post["id"], "KMMASKWORD!"))["comment"]
    assert comment["body"] == "***!"


async def test_held_post_waits_for_a_moderator(make_client) -> None:  # type: ignore[no-untyped-def]
    author, author_user = await signed_in(make_client)
    other, _ = await signed_in(make_client)
    moderator, moderator_user = await signed_in(make_client, Role.MODERATOR, "Mod")
    held = await new_post(author, body="this has kmholdword inside")
    assert held["status"] == "HELD"
    post_id = pk(held["id"])
    assert await ModerationAction.filter(target_kind="POST", target_id=post_id, action="HOLD").count() == 1
    published = [e for e in await OutboxEntry.filter(kind=OutboxKind.JOB) if e.payload["kwargs"].get("post_id") == post_id
                 or e.payload["kwargs"].get("reference") == f"post:{post_id}"]
    assert published == []  # held: no fan-out, no points until released

    assert (await other.gql(POST, {"id": held["id"]}))["post"] is None
    assert (await author.gql(POST, {"id": held["id"]}))["post"]["status"] == "HELD"
    assert (await moderator.gql(POST, {"id": held["id"]}))["post"]["status"] == "HELD"
    listing = """query($a: ID) { posts(first: 50, filter: {authorId: $a}) { edges { node { id status } } } }"""
    assert (await other.gql(listing, {"a": gid("User", author_user.id)}))["posts"]["edges"] == []
    own = (await author.gql(listing, {"a": gid("User", author_user.id)}))["posts"]["edges"]
    assert [e["node"]["status"] for e in own] == ["HELD"]
    no_comments = await add_comment(other, held["id"], "hi")
    assert no_comments["errors"][0]["code"] == "NOT_FOUND"

    queue = await moderator.gql(QUEUE)
    items = [i["node"] for i in queue["moderationQueue"]["edges"]]
    (item,) = [i for i in items if i["target"] and i["target"]["id"] == held["id"]]
    assert item["kind"] == "HELD" and item["reason"] == "sensitive words: kmholdword" and item["reporter"] is None

    not_staff = await other.gql(RELEASE, {"input": {"targetId": held["id"], "reason": "fine"}})
    assert not_staff["releaseContent"]["errors"][0]["code"] == "FORBIDDEN"
    released = await moderator.gql(RELEASE, {"input": {"targetId": held["id"], "reason": "false positive"}})
    assert released["releaseContent"]["errors"] == []
    assert released["releaseContent"]["target"]["status"] == "VISIBLE"
    assert (await other.gql(POST, {"id": held["id"]}))["post"]["status"] == "VISIBLE"
    fan_out = [e for e in await OutboxEntry.filter(topic="fan_out_post") if e.payload["kwargs"]["post_id"] == post_id]
    live = [e for e in await OutboxEntry.filter(topic="posts:live") if e.payload["post"] == post_id]
    assert len(fan_out) == 1 and len(live) == 1
    again = await moderator.gql(RELEASE, {"input": {"targetId": held["id"], "reason": "twice"}})
    assert again["releaseContent"]["errors"][0]["code"] == "INVALID_STATE"
    trail = await ModerationAction.filter(target_kind="POST", target_id=post_id).order_by("id")
    assert [(a.action, a.moderator_id) for a in trail] == [("HOLD", None), ("RELEASE", moderator_user.id)]
    assert trail[1].reason == "false positive"


async def test_held_comment_is_released(make_client) -> None:  # type: ignore[no-untyped-def]
    author, _ = await signed_in(make_client)
    moderator, _ = await signed_in(make_client, Role.MODERATOR, "Mod")
    post = await new_post(author)
    held = (await add_comment(author, post["id"], "kmholdword"))["comment"]
    assert held["status"] == "HELD"
    assert (await author.gql(POST, {"id": post["id"]}))["post"]["commentCount"] == 0
    released = await moderator.gql(RELEASE, {"input": {"targetId": held["id"], "reason": "ok"}})
    assert released["releaseContent"]["target"]["status"] == "VISIBLE"
    assert (await author.gql(POST, {"id": post["id"]}))["post"]["commentCount"] == 1
    events = [e for e in await OutboxEntry.filter(topic=f"post:{pk(post['id'])}:comments")]
    assert [e.payload for e in events] == [{"comment": pk(held["id"])}]


# -- reports, the queue, hide and restore -----------------------------------------------

REPORT = """mutation($input: ReportContentInput!) { reportContent(input: $input) { errors { code field } reported } }"""
HIDE = """mutation($input: HideContentInput!) { hideContent(input: $input) {
  errors { code field } target { ... on Post { id status } ... on Comment { id status } } } }"""
RESTORE = """mutation($input: RestoreContentInput!) { restoreContent(input: $input) {
  errors { code field } target { ... on Post { id status } ... on Comment { id status } } } }"""
RELEASE = """mutation($input: ReleaseContentInput!) { releaseContent(input: $input) {
  errors { code field } target { ... on Post { id status } ... on Comment { id status } } } }"""
QUEUE = """{ moderationQueue(first: 100) { edges { cursor node { kind reason openReports reporter { id }
  target { ... on Post { id status } ... on Comment { id status } } } } pageInfo { hasNextPage endCursor } } }"""


async def test_reports_queue_hide_and_restore(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    author, author_user = await signed_in(make_client)
    await delivered_order(author_user, product)
    reporter, reporter_user = await signed_in(make_client)
    moderator, moderator_user = await signed_in(make_client, Role.MODERATOR, "Mod")
    review = await new_post(author, kind="REVIEW", productId=gid("Product", product.id), rating=5)
    await product.refresh_from_db()
    assert (product.rating_sum, product.review_count) == (5, 1)

    bad = await reporter.gql(REPORT, {"input": {"targetId": gid("Product", product.id), "reason": "spam"}})
    assert bad["reportContent"]["errors"][0] == {"code": "INVALID_INPUT", "field": "targetId"}
    empty = await reporter.gql(REPORT, {"input": {"targetId": review["id"], "reason": "  "}})
    assert empty["reportContent"]["errors"][0]["field"] == "reason"
    assert await Report.filter(target_id=pk(review["id"])).count() == 0
    first = await reporter.gql(REPORT, {"input": {"targetId": review["id"], "reason": "fake review"}})
    assert first["reportContent"] == {"errors": [], "reported": True}
    dup = await reporter.gql(REPORT, {"input": {"targetId": review["id"], "reason": "again"}})
    assert dup["reportContent"]["errors"][0]["code"] == "DUPLICATE"

    forbidden = await reporter.post(QUEUE)
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    queue = (await moderator.gql(QUEUE))["moderationQueue"]["edges"]
    mine = [e["node"] for e in queue if e["node"]["target"] and e["node"]["target"]["id"] == review["id"]]
    assert mine == [{"kind": "REPORT", "reason": "fake review", "openReports": 1,
                     "reporter": {"id": gid("User", reporter_user.id)}, "target": {"id": review["id"], "status": "VISIBLE"}}]

    # Two moderators hide at once: one wins, the rating loses the review once.
    hides = await asyncio.gather(*(
        moderator.gql(HIDE, {"input": {"targetId": review["id"], "reason": "fake"}}) for _ in range(4)))
    codes = sorted(h["hideContent"]["errors"][0]["code"] if h["hideContent"]["errors"] else "OK" for h in hides)
    assert codes.count("OK") == 1 and set(codes) <= {"OK", "INVALID_STATE"}
    await product.refresh_from_db()
    assert (product.rating_sum, product.review_count) == (0, 0)
    assert not await Report.filter(target_id=pk(review["id"]), open=True).exists()
    queue = (await moderator.gql(QUEUE))["moderationQueue"]["edges"]
    assert not any(e["node"]["target"] and e["node"]["target"]["id"] == review["id"] for e in queue)

    # Hidden: gone for others (lookups and lists), still there for the author and staff.
    assert (await reporter.gql(POST, {"id": review["id"]}))["post"] is None
    node = await reporter.gql("query($id: ID!) { node(id: $id) { id } }", {"id": review["id"]})
    assert node["node"] is None
    listing = """query($p: ID) { posts(first: 50, filter: {productId: $p}) { edges { node { id status } } } }"""
    assert (await reporter.gql(listing, {"p": gid("Product", product.id)}))["posts"]["edges"] == []
    assert (await author.gql(POST, {"id": review["id"]}))["post"]["status"] == "HIDDEN"
    assert (await moderator.gql(POST, {"id": review["id"]}))["post"]["status"] == "HIDDEN"
    like = await reporter.gql("""mutation($i: LikePostInput!) { likePost(input: $i) { errors { code } } }""",
                              {"i": {"postId": review["id"]}})
    assert like["likePost"]["errors"][0]["code"] == "NOT_FOUND"
    edit = await author.gql("""mutation($i: EditPostInput!) { editPost(input: $i) { errors { code } } }""",
                            {"i": {"postId": review["id"], "body": "please"}})
    assert edit["editPost"]["errors"][0]["code"] == "INVALID_STATE"
    hidden_note = await author.gql("{ viewer { notifications(first: 5) { edges { node { kind } } } } }")
    assert "CONTENT_HIDDEN" in {e["node"]["kind"] for e in hidden_note["viewer"]["notifications"]["edges"]}

    restored = await moderator.gql(RESTORE, {"input": {"targetId": review["id"], "reason": "appeal accepted"}})
    assert restored["restoreContent"]["target"] == {"id": review["id"], "status": "VISIBLE"}
    await product.refresh_from_db()
    assert (product.rating_sum, product.review_count) == (5, 1)
    trail = await ModerationAction.filter(target_kind="POST", target_id=pk(review["id"])).order_by("id")
    assert [(a.action, a.moderator_id, a.reason) for a in trail] == [
        ("HIDE", moderator_user.id, "fake"), ("RESTORE", moderator_user.id, "appeal accepted")]
    # A closed report can be filed again.
    reopened = await reporter.gql(REPORT, {"input": {"targetId": review["id"], "reason": "still fake"}})
    assert reopened["reportContent"]["errors"] == []


async def test_hidden_comment_leaves_the_count_once(make_client) -> None:  # type: ignore[no-untyped-def]
    author, _ = await signed_in(make_client)
    other, _ = await signed_in(make_client)
    moderator, _ = await signed_in(make_client, Role.ADMIN, "Admin")
    post = await new_post(author)
    comment = (await add_comment(other, post["id"], "rude"))["comment"]
    for _ in range(2):
        await moderator.gql(HIDE, {"input": {"targetId": comment["id"], "reason": "rude"}})
    assert (await author.gql(POST, {"id": post["id"]}))["post"]["commentCount"] == 0
    comments = """query($id: ID!) { post(id: $id) { comments { edges { node { id status } } } } }"""
    assert (await author.gql(comments, {"id": post["id"]}))["post"]["comments"]["edges"] == []
    own = (await other.gql(comments, {"id": post["id"]}))["post"]["comments"]["edges"]
    assert own == [{"node": {"id": comment["id"], "status": "HIDDEN"}}]
    reply = await add_comment(author, post["id"], "to a hidden one", parentId=comment["id"])
    assert reply["errors"][0]["code"] == "NOT_FOUND"
    bad = await moderator.gql(HIDE, {"input": {"targetId": "nonsense", "reason": "x"}})
    assert bad["hideContent"]["errors"][0]["code"] == "INVALID_INPUT"
    no_reason = await moderator.gql(HIDE, {"input": {"targetId": post["id"], "reason": ""}})
    assert no_reason["hideContent"]["errors"][0]["field"] == "reason"
    assert (await Post.get(id=pk(post["id"]))).status == ContentStatus.VISIBLE


async def test_queue_pages_with_keyset_cursors(make_client) -> None:  # type: ignore[no-untyped-def]
    moderator, _ = await signed_in(make_client, Role.MODERATOR, "Mod")
    author, _ = await signed_in(make_client)
    for i in range(3):
        await new_post(author, body=f"kmholdword {i}")
    query = """query($after: String) { moderationQueue(first: 2, after: $after) {
      edges { cursor node { kind } } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    while True:
        conn = (await moderator.gql(query, {"after": after}))["moderationQueue"]
        seen += [e["cursor"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    everything = (await moderator.gql(QUEUE))["moderationQueue"]["edges"]
    assert seen == [e["cursor"] for e in everything] and len(seen) >= 3
    assert len(set(seen)) == len(seen)


# -- rate limits ------------------------------------------------------------------------


async def _fill(stack, limit: str, kind: str, user: User, times: int) -> None:  # type: ignore[no-untyped-def]
    from kameng import runtime

    limiter = runtime.limiter()
    for _ in range(times):
        await limiter.hit(limit, f"community:{kind}", str(user.id))


async def test_posting_is_rate_limited_more_strictly_for_new_accounts(stack, make_client) -> None:  # type: ignore[no-untyped-def]
    settings = stack.settings
    newcomer, newcomer_user = await signed_in(make_client)
    veteran, veteran_user = await signed_in(make_client)
    await User.filter(id=veteran_user.id).update(created_at=datetime.now(UTC) - timedelta(days=2))
    veteran.token = await token_for(await User.get(id=veteran_user.id))

    strict = int(settings.post_limit_new_account.split("/")[0])
    await _fill(stack, settings.post_limit_new_account, "post", newcomer_user, strict)
    await _fill(stack, settings.post_limit_new_account, "post", veteran_user, strict)
    before = await Post.all().count()
    limited = await create_post(newcomer)
    assert limited["errors"][0]["code"] == "RATE_LIMITED" and limited["post"] is None
    assert await Post.all().count() == before
    assert (await create_post(veteran))["errors"] == []  # the stricter limit is for new accounts only

    await _fill(stack, settings.post_limit, "post", veteran_user, int(settings.post_limit.split("/")[0]))
    assert (await create_post(veteran))["errors"][0]["code"] == "RATE_LIMITED"

    post = await new_post(await _staff(make_client))
    strict_comments = int(settings.comment_limit_new_account.split("/")[0])
    await _fill(stack, settings.comment_limit_new_account, "comment", newcomer_user, strict_comments)
    refused = await add_comment(newcomer, post["id"], "hello")
    assert refused["errors"][0]["code"] == "RATE_LIMITED"


async def _staff(make_client) -> Client:  # type: ignore[no-untyped-def]
    client, _ = await signed_in(make_client, Role.MODERATOR, "Mod")
    return client


async def test_mutations_need_a_user(make_client) -> None:  # type: ignore[no-untyped-def]
    anonymous = make_client()
    comment = await anonymous.gql(ADD_COMMENT, {"input": {"postId": gid("Post", 1), "body": "x"}})
    assert comment["addComment"]["errors"][0]["code"] == "UNAUTHENTICATED"
    report = await anonymous.gql(REPORT, {"input": {"targetId": gid("Post", 1), "reason": "x"}})
    assert report["reportContent"]["errors"][0]["code"] == "UNAUTHENTICATED"
    hide = await anonymous.gql(HIDE, {"input": {"targetId": gid("Post", 1), "reason": "x"}})
    assert hide["hideContent"]["errors"][0]["code"] == "UNAUTHENTICATED"
    created = await anonymous.gql(CREATE_POST, {"input": {"kind": "GUIDE", "title": "t", "body": "b"}})
    assert created["createPost"]["errors"][0]["code"] == "UNAUTHENTICATED"


async def test_editing_a_held_word_into_a_review_holds_it_and_takes_it_out_of_the_rating(make_client) -> None:  # type: ignore[no-untyped-def]
    product = await make_product()
    author, author_user = await signed_in(make_client)
    await delivered_order(author_user, product)
    review = await new_post(author, kind="REVIEW", productId=gid("Product", product.id), rating=3)
    edit = """mutation($i: EditPostInput!) { editPost(input: $i) { errors { code } post { status rating } } }"""
    changed = await author.gql(edit, {"i": {"postId": review["id"], "rating": 5, "body": "now with kmholdword"}})
    assert changed["editPost"] == {"errors": [], "post": {"status": "HELD", "rating": 5}}
    await product.refresh_from_db()
    assert (product.rating_sum, product.review_count) == (0, 0)
    moderator, _ = await signed_in(make_client, Role.MODERATOR, "Mod")
    await moderator.gql(RELEASE, {"input": {"targetId": review["id"], "reason": "ok"}})
    await product.refresh_from_db()
    assert (product.rating_sum, product.review_count) == (5, 1)
    other, _ = await signed_in(make_client)
    not_author = await other.gql(edit, {"i": {"postId": review["id"], "rating": 1}})
    assert not_author["editPost"]["errors"][0]["code"] == "FORBIDDEN"
