"""Live community streams: commentAdded, repliesToMe, liveFeed.

Resolver-level tests run the streams on the test stack's bus (in-process, or Redis in the
services run), with comments and posts written with the ORM and the contract's outbox events
(the posts engineer's mutations emit the same ones). WebSocket tests go through the graph,
including a disconnect and a resume with the last ID seen. The last test runs `kameng serve`
and `kameng worker` as separate processes on PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from strawberry.relay import GlobalID

from kameng import runtime
from models.accounts.users import User
from models.community.comments import Comment
from models.community.posts import ContentStatus, Post, PostKind
from models.community.topics import PostTopic, Topic
from resolvers.community import streams
from resolvers.accounts.auth import Actor
from resolvers.errors import ErrorCode, UserFacingError
from subscriptions import jobs, outbox
from tests.conftest import (
    LOCAL_PG,
    LOCAL_REDIS,
    Stack,
    drop_redis_namespace,
    free_port,
    new_namespace,
    postgres_database,
    reachable,
)
from tests.factories import make_user, token_for
from tests.test_subscriptions import connect, recv

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5.0


def gid(type_name: str, key: int) -> str:
    return str(GlobalID(type_name, str(key)))


def pk(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


async def make_post(author: User, *, topics: tuple[Topic, ...] = (), publish: bool = True) -> Post:
    """A visible post, published as the contract says (fan-out job + live event)."""
    async with outbox.atomic():
        post = await Post.create(author=author, kind=PostKind.GUIDE, title="Live", body="b", body_html="<p>b</p>")
        for topic in topics:
            await PostTopic.create(post=post, topic=topic)
        if publish:
            await outbox.enqueue(jobs.fan_out_post(post.id))
            await outbox.emit("posts:live", {"post": post.id, "topics": [t.slug for t in topics]})
    return post


async def add_comment(post: Post, author: User, parent: Comment | None = None, body: str = "hi") -> Comment:
    """A visible comment and its events, as the contract says."""
    async with outbox.atomic():
        comment = await Comment.create(
            post=post, author=author, parent=parent, body=body, body_html=f"<p>{body}</p>",
            depth=(parent.depth + 1) if parent else 0,
        )
        await outbox.emit(f"post:{post.id}:comments", {"comment": comment.id})
        told: set[int] = set()
        for uid in (post.author_id, parent.author_id if parent else None):
            if uid is not None and uid != author.id and uid not in told:
                told.add(uid)
                await outbox.emit(f"user:{uid}:replies", {"comment": comment.id})
    return comment


async def make_topic() -> Topic:
    slug = f"live-{uuid.uuid4().hex[:8]}"
    return await Topic.create(slug=slug, name=slug)


class Reader:
    """Consume an async iterator in the background, so a test can publish meanwhile."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for item in self.stream:
                self.queue.put_nowait(item)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            self.queue.put_nowait(exc)

    async def next(self, timeout: float = TIMEOUT) -> Any:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def started(stream: AsyncIterator[Any]) -> Reader:
    reader = Reader(stream)
    await asyncio.sleep(0.3)  # listening (the subscribe happens inside the stream)
    return reader


# -- resolver level ---------------------------------------------------------------------


async def test_comment_stream_resumes_and_stops_when_the_post_is_hidden(stack: Stack) -> None:
    bus = runtime.bus()
    author, talker = await make_user(), await make_user()
    post = await make_post(author)
    live = await started(streams.comment_stream(bus, Actor(), post.id))
    try:
        first = await add_comment(post, talker)
        assert (await live.next()).id == first.id
        # A comment that is not visible (held by the filter) is not delivered.
        held = await add_comment(post, talker)
        await Comment.filter(id=held.id).update(status=ContentStatus.HELD)
        second = await add_comment(post, talker)
        got = await live.next()
        assert got.id in (held.id, second.id)
        if got.id == held.id:  # raced with the update: the status read was still VISIBLE
            got = await live.next()
        assert got.id == second.id
    finally:
        await live.close()
    # Resume after the first: the ones missed come from the database, then live ones.
    resumed = await started(streams.comment_stream(bus, Actor(), post.id, after=first.id))
    try:
        assert (await resumed.next()).id == second.id
        third = await add_comment(post, talker)
        assert (await resumed.next()).id == third.id
        # Hidden by a moderator: the next event ends the stream with FORBIDDEN.
        await Post.filter(id=post.id).update(status=ContentStatus.HIDDEN)
        await add_comment(post, talker)
        error = await resumed.next()
        assert isinstance(error, UserFacingError) and error.code == ErrorCode.FORBIDDEN
    finally:
        await resumed.close()
    with pytest.raises(UserFacingError) as refused:
        await anext(streams.comment_stream(bus, Actor(), post.id))
    assert refused.value.code == ErrorCode.FORBIDDEN


async def test_comment_stream_notices_a_hidden_post_while_the_thread_is_quiet(stack: Stack) -> None:
    bus = runtime.bus()
    post = await make_post(await make_user())
    live = await started(streams.comment_stream(bus, Actor(), post.id, recheck=0.2))
    try:
        await Post.filter(id=post.id).update(status=ContentStatus.HIDDEN)
        error = await live.next()
        assert isinstance(error, UserFacingError) and error.code == ErrorCode.FORBIDDEN
    finally:
        await live.close()


async def test_reply_stream_delivers_replies_to_me_only(stack: Stack) -> None:
    bus = runtime.bus()
    me, other, third = await make_user(), await make_user(), await make_user()
    mine = await make_post(me)
    theirs = await make_post(other)
    with pytest.raises(UserFacingError) as anonymous:
        await anext(streams.reply_stream(bus, Actor()))
    assert anonymous.value.code == ErrorCode.UNAUTHENTICATED
    live = await started(streams.reply_stream(bus, Actor(user=me)))
    try:
        on_my_post = await add_comment(mine, other)
        assert (await live.next()).id == on_my_post.id
        my_comment = await add_comment(theirs, me)  # my own: not a reply to me
        reply = await add_comment(theirs, third, parent=my_comment)
        assert (await live.next()).id == reply.id
        await add_comment(theirs, third)  # on someone else's post: not mine
        with pytest.raises(TimeoutError):
            await live.next(timeout=0.7)
    finally:
        await live.close()
    resumed = await started(streams.reply_stream(bus, Actor(user=me), after=on_my_post.id))
    try:
        assert (await resumed.next()).id == reply.id
    finally:
        await resumed.close()


async def test_live_stream_filters_by_topic_and_resumes(stack: Stack) -> None:
    bus = runtime.bus()
    author = await make_user()
    topic = await make_topic()
    everything = await started(streams.live_stream(bus))
    in_topic = await started(streams.live_stream(bus, topic=topic.slug))
    try:
        plain = await make_post(author)
        tagged = await make_post(author, topics=(topic,))
        assert (await everything.next()).id == plain.id
        assert (await everything.next()).id == tagged.id
        assert (await in_topic.next()).id == tagged.id
    finally:
        await everything.close()
        await in_topic.close()
    later = await make_post(author, topics=(topic,))
    resumed = await started(streams.live_stream(bus, topic=topic.slug, after=tagged.id))
    try:
        assert (await resumed.next()).id == later.id
    finally:
        await resumed.close()


# -- over WebSocket ---------------------------------------------------------------------

REPLIES = "subscription($after: ID) { repliesToMe(after: $after) { id body } }"
COMMENTS = "subscription($post: ID!, $after: ID) { commentAdded(postId: $post, after: $after) { id body } }"
LIVE = "subscription($topic: String) { liveFeed(topic: $topic) { id title } }"


async def _subscribe(ws: Any, query: str, variables: dict[str, Any]) -> None:
    assert (await recv(ws))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}))
    await asyncio.sleep(0.3)


async def _next(ws: Any, field: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    message = await recv(ws, timeout)
    assert message["type"] == "next", message
    assert not message["payload"].get("errors"), message
    return message["payload"]["data"][field]


async def test_replies_to_me_resumes_over_websocket(stack: Stack) -> None:
    me, other = await make_user(), await make_user()
    token = await token_for(me)
    post = await make_post(me)
    async with await connect(stack, "graphql-transport-ws", token) as ws:
        await _subscribe(ws, REPLIES, {})
        first = await add_comment(post, other, body="first")
        got = await _next(ws, "repliesToMe")
        assert got == {"id": gid("Comment", first.id), "body": "first"}
    last_seen = got["id"]
    # Disconnected: two replies are posted meanwhile.
    missed = [await add_comment(post, other, body=f"missed {i}") for i in range(2)]
    async with await connect(stack, "graphql-transport-ws", token) as ws:
        await _subscribe(ws, REPLIES, {"after": last_seen})
        assert [pk((await _next(ws, "repliesToMe"))["id"]) for _ in range(2)] == [c.id for c in missed]
        live = await add_comment(post, other, body="live")
        assert pk((await _next(ws, "repliesToMe"))["id"]) == live.id
        with pytest.raises(TimeoutError):  # no duplicates
            await recv(ws, timeout=0.7)


async def test_comment_added_over_websocket_and_a_hidden_post_stops_it(stack: Stack) -> None:
    author, talker = await make_user(), await make_user()
    post = await make_post(author)
    async with await connect(stack, "graphql-transport-ws", None) as ws:
        await _subscribe(ws, COMMENTS, {"post": gid("Post", post.id)})
        comment = await add_comment(post, talker, body="hello")
        assert await _next(ws, "commentAdded") == {"id": gid("Comment", comment.id), "body": "hello"}
        await Post.filter(id=post.id).update(status=ContentStatus.HIDDEN)
        await add_comment(post, talker)
        message = await recv(ws)
        errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
        assert errors and errors[0]["extensions"]["code"] == "FORBIDDEN", message
    # Subscribing to a hidden post is refused.
    async with await connect(stack, "graphql-transport-ws", None) as ws:
        await _subscribe(ws, COMMENTS, {"post": gid("Post", post.id)})
        message = await recv(ws)
        errors = message["payload"] if message["type"] == "error" else message["payload"].get("errors")
        assert errors and errors[0]["extensions"]["code"] == "FORBIDDEN", message


async def test_live_feed_over_websocket(stack: Stack) -> None:
    topic = await make_topic()
    async with await connect(stack, "graphql-ws", None) as ws:
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": LIVE, "variables": {"topic": topic.slug}}}))
        await asyncio.sleep(0.3)
        author = await make_user()
        await make_post(author)
        tagged = await make_post(author, topics=(topic,))
        message = await recv(ws)
        assert message["type"] == "data", message
        assert message["payload"]["data"]["liveFeed"]["id"] == gid("Post", tagged.id)


# -- separate processes: `kameng serve` + `kameng worker` on PostgreSQL and Redis -------


def _env(database_url: str, namespace: str, data_dir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("KAMENG_", "DATABASE_URL", "REDIS_URL", "BROKER_URL"))}
    return {
        **keep,
        "DATABASE_URL": database_url,
        "REDIS_URL": LOCAL_REDIS,
        "BROKER_URL": LOCAL_REDIS,
        "KAMENG_NAMESPACE": namespace,
        "KAMENG_DATA_DIR": str(data_dir),
        "KAMENG_SECRET_KEY": uuid.uuid4().hex * 2,
        "KAMENG_FINGERPRINT_KEY": uuid.uuid4().hex,
        "KAMENG_INPROCESS_WORKER": "false",
        "KAMENG_LOG_LEVEL": "WARNING",
        "KAMENG_REGISTER_LIMIT_PER_IP": "1000/minute",
        "KAMENG_LOGIN_LIMIT_PER_IP": "1000/minute",
    }


async def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}")
            try:
                if (await http.get(f"{url}/readyz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the server did not become ready")


async def _gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = (await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)).json()
    assert "errors" not in body, body
    return body["data"]


REGISTER = "mutation($input: RegisterInput!) { register(input: $input) { errors { code } accessToken user { id } } }"
CREATE_POST = "mutation($input: CreatePostInput!) { createPost(input: $input) { errors { code field message } post { id } } }"
ADD_COMMENT = "mutation($input: AddCommentInput!) { addComment(input: $input) { errors { code field message } comment { id } } }"


@pytest.mark.skipif(
    not (reachable(LOCAL_PG, 5432) and reachable(LOCAL_REDIS, 6379)), reason="needs PostgreSQL and Redis"
)
async def test_reply_reaches_the_buyer_within_a_second_across_processes(tmp_path: Path) -> None:
    namespace = new_namespace()
    try:
        async with postgres_database(LOCAL_PG, namespace) as dsn:
            env = _env(dsn, namespace, tmp_path)
            done = subprocess.run([sys.executable, "-m", "service", "migrate"], env=env, cwd=ROOT,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            port = free_port()
            log = tmp_path / "processes.log"
            processes = [
                subprocess.Popen(
                    [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
                    env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
                ),
                subprocess.Popen([sys.executable, "-m", "service", "worker"], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=log.open("ab")),
            ]
            try:
                await _reply_across_processes(f"http://127.0.0.1:{port}", namespace, processes[0])
            except BaseException:
                print(log.read_text()[-5000:])
                raise
            finally:
                _stop(processes)
    finally:
        await drop_redis_namespace(LOCAL_REDIS, namespace)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _reply_across_processes(url: str, namespace: str, server: subprocess.Popen[bytes]) -> None:
    await _wait_ready(url, server)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        tokens = []
        for name in ("Buyer", "Commenter"):
            email = f"{uuid.uuid4().hex[:10]}@example.com"
            payload = (await _gql(http, REGISTER, {"input": {
                "email": email, "password": "correct horse battery", "nickname": name}}))["register"]
            assert payload["errors"] == [], payload
            tokens.append(payload["accessToken"])
        buyer, commenter = tokens
        created = (await _gql(http, CREATE_POST, {"input": {
            "kind": "GUIDE", "title": "How I top up", "body": "Step one."}}, buyer))["createPost"]
        assert created["errors"] == [], created
        post_id = created["post"]["id"]
        stack = Stack(settings=None, url=url, namespace=namespace)  # type: ignore[arg-type]
        async with await connect(stack, "graphql-transport-ws", buyer) as ws:
            await _subscribe(ws, REPLIES, {})
            started_at = time.perf_counter()
            added = (await _gql(http, ADD_COMMENT, {"input": {"postId": post_id, "body": "Nice one"}},
                                commenter))["addComment"]
            assert added["errors"] == [], added
            got = await _next(ws, "repliesToMe", timeout=1.0)
            elapsed = time.perf_counter() - started_at
            assert got["id"] == added["comment"]["id"]
            assert elapsed < 1.0, elapsed
        last_seen = got["id"]
        # Away: two more comments; resuming with the last ID delivers them, then live ones.
        missed = []
        for i in range(2):
            more = (await _gql(http, ADD_COMMENT, {"input": {"postId": post_id, "body": f"more {i}"}},
                               commenter))["addComment"]
            assert more["errors"] == [], more
            missed.append(more["comment"]["id"])
        async with await connect(stack, "graphql-transport-ws", buyer) as ws:
            await _subscribe(ws, REPLIES, {"after": last_seen})
            assert [(await _next(ws, "repliesToMe"))["id"] for _ in range(2)] == missed
