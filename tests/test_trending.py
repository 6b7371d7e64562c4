"""Trending keywords (issue 11, item 7), on both stacks: a term that rose over the window
(posts, comments and searches, counted once per person) is listed with its counts and rise; a
term as frequent as in the window before is not; search-only terms stay out of the public
`trendingTopics`; staff only for `trendingKeywords`; the sweep stores and serves the table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from models.accounts.users import Role, User
from models.community.comments import Comment
from models.community.posts import Post, PostKind
from models.discovery.events import EventKind
from models.discovery.trending import TrendWindow
from resolvers.discovery import trending
from resolvers.discovery.tracking import TrackedEvent, record
from tests.factories import make_user, token_for

STAFF = """query($w: TrendWindow!) { trendingKeywords(window: $w, first: 100) {
  window computedAt keywords { keyword count previousCount contentCount rise } } }"""


def word() -> str:
    return "tw" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])


async def post_at(author: User, when: datetime, title: str, body: str) -> Post:
    post = await Post.create(author=author, kind=PostKind.GUIDE, title=title, body=body, body_html=body)
    await Post.filter(id=post.id).update(created_at=when)
    return post


async def comment_at(author: User, post: Post, when: datetime, body: str) -> None:
    made = await Comment.create(post=post, author=author, body=body, body_html=body)
    await Comment.filter(id=made.id).update(created_at=when)


async def test_a_rising_term_trends_and_a_steady_one_does_not(make_client: Any) -> None:
    now = datetime.now(UTC)
    rising, steady, searched, once = word(), word(), word(), word()
    chinese = "炉石传说新版本卡组推荐"
    people = [await make_user(Role.BUYER, f"P{i}") for i in range(5)]
    earlier = now - timedelta(hours=30)  # the previous day
    recent = now - timedelta(hours=2)
    for person in people[:4]:  # the steady term: four people in each window
        await post_at(person, earlier, f"{steady} 攻略", "旧")
        await post_at(person, recent, f"{steady} 心得", "新")
    first = await post_at(people[0], recent, f"{rising} {chinese}", "正文")
    for person in people[1:4]:
        await comment_at(person, first, recent, f"同意 {rising} {chinese}")
    for _ in range(10):  # one person repeating a term counts once
        await post_at(people[4], recent, once, once)
    await post_at(people[4], earlier, rising, "之前只有一个人")  # one before: (4 + 2) / (1 + 2) = 2
    await record([TrackedEvent(event_id=uuid.uuid4().hex, kind=EventKind.SEARCH, device_id=f"dev{i}", query=searched,
                               occurred_at=recent) for i in range(3)])

    await trending.compute(TrendWindow.DAY, now)

    staff = make_client()
    staff.token = await token_for(await make_user(Role.MODERATOR, "Merch"))
    body = (await staff.post(STAFF, {"w": "DAY"})).json()
    assert "errors" not in body, body
    listed = {k["keyword"]: k for k in body["data"]["trendingKeywords"]["keywords"]}
    assert listed[rising] == {"keyword": rising, "count": 4, "previousCount": 1, "contentCount": 4, "rise": 2.0}
    assert steady not in listed and once not in listed
    assert listed[searched]["count"] == 3 and listed[searched]["contentCount"] == 0
    from kameng import text

    assert text.keywords(chinese) and all(term in listed for term in text.keywords(chinese))
    assert body["data"]["trendingKeywords"]["computedAt"] is not None

    public = (await make_client().post("query { trendingTopics(first: 100) }")).json()
    assert rising in public["data"]["trendingTopics"] and searched not in public["data"]["trendingTopics"]
    assert steady not in public["data"]["trendingTopics"]

    buyer = make_client()
    buyer.token = await token_for(people[0])
    for client in (buyer, make_client()):
        refused = (await client.post(STAFF, {"w": "DAY"})).json()
        assert "errors" not in refused and refused["data"] == {"trendingKeywords": None}
    bad = (await staff.post("query { trendingKeywords(first: 1000) { window } }")).json()
    assert [e["extensions"]["code"] for e in bad["errors"]] == ["INVALID_INPUT"]


async def test_the_sweep_recomputes_when_due() -> None:
    trending._last_run.clear()
    await trending.refresh_due()
    assert set(trending._last_run) == set(TrendWindow)
    stamp = dict(trending._last_run)
    await trending.refresh_due()  # not due again yet
    assert trending._last_run == stamp
