"""Likes notify the author once per post while unread, with a running count."""

from __future__ import annotations

from strawberry.relay import GlobalID

from models.community.posts import Post, PostKind
from models.accounts.notifications import Notification
from resolvers.accounts import notifications
from resolvers.accounts.auth import Actor
from tests.factories import make_user, token_for

LIKE = """mutation($input: LikePostInput!) { likePost(input: $input) { errors { code } } }"""


async def test_likes_are_grouped_while_unread(make_client) -> None:  # type: ignore[no-untyped-def]
    author = await make_user(nickname="Author")
    post = await Post.create(author=author, kind=PostKind.GUIDE, title="How to redeem", body="b", body_html="<p>b</p>")
    post_id = str(GlobalID("Post", str(post.id)))
    likers = [await make_user(nickname=f"Fan{i}") for i in range(3)]

    async def like(user) -> None:  # type: ignore[no-untyped-def]
        client = make_client()
        client.token = await token_for(user)
        assert (await client.gql(LIKE, {"input": {"postId": post_id}}))["likePost"]["errors"] == []

    await like(likers[0])
    await like(likers[1])
    await like(likers[1])  # a repeated like counts once and notifies nothing new
    grouped = await Notification.filter(user_id=author.id, kind="LIKES")
    assert len(grouped) == 1
    assert grouped[0].data == {"postId": post.id, "likeCount": 2}
    assert grouped[0].title == "Fan1 and 1 other liked “How to redeem”"

    await notifications.mark_read(Actor(user=author), None)
    await like(likers[2])
    notes = await Notification.filter(user_id=author.id, kind="LIKES").order_by("id")
    assert len(notes) == 2 and notes[0].read_at is not None and notes[1].read_at is None
    assert notes[1].data["likeCount"] == 3

    await like(author)  # one's own like notifies nobody
    assert await Notification.filter(user_id=author.id, kind="LIKES").count() == 2
