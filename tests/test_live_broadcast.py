"""Live subscriptions rendered once per selection set and permission class
(service/web/broadcast.py), through real graphql-transport-ws clients (Python gql): public
``liveFeed`` subscribers of one document share one group, viewer-dependent selections and
resumes run on their own, leaving a group keeps the others served, the last one stops it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from gql import Client as GqlClient
from gql import GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from graphql import parse, print_ast

from service.web import broadcast
from tests.conftest import Stack
from tests.factories import make_user, token_for
from tests.test_community_realtime import gid, make_post

PUBLIC = "subscription { liveFeed { id title author { nickname } } }"
PERSONAL = "subscription { liveFeed { id viewerHasLiked } }"
RESUME = "subscription($after: ID) { liveFeed(after: $after) { id title } }"
TIMEOUT = 10.0


class Subscriber:
    """One graphql-transport-ws connection with one subscription, read in the background."""

    def __init__(self, stack: Stack, query: str, variables: dict[str, Any] | None = None, token: str | None = None):
        self.transport = WebsocketsTransport(
            url=stack.ws_url, init_payload={"Authorization": f"Bearer {token}"} if token else {},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )  # fmt: skip
        self.request = GraphQLRequest(query, variable_values=variables)
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async with GqlClient(transport=self.transport) as session:
            async for data in session.subscribe(self.request):
                self.received.put_nowait(data)

    def start(self) -> None:
        self.task = asyncio.create_task(self._read())

    async def next(self) -> dict[str, Any]:
        return (await asyncio.wait_for(self.received.get(), TIMEOUT))["liveFeed"]

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@contextlib.asynccontextmanager
async def subscribers(stack: Stack, specs: list[tuple[str, dict[str, Any] | None, str | None]]) -> AsyncIterator[list[Subscriber]]:
    started = [Subscriber(stack, query, variables, token) for query, variables, token in specs]
    for subscriber in started:
        subscriber.start()
    try:
        yield started
    finally:
        await asyncio.gather(*(s.stop() for s in started), return_exceptions=True)


def groups_of(query: str, variables: dict[str, Any] | None = None) -> list[Any]:
    """The live groups serving ``query`` (as the client printed it) with ``variables``."""
    printed = print_ast(parse(query))
    return [group for (text, encoded, _), group in broadcast._groups.items()
            if print_ast(parse(text)) == printed and orjson.loads(encoded) == (variables or {})]


async def members_of(query: str, count: int, variables: dict[str, Any] | None = None) -> None:
    """Wait until one group serves ``query`` with ``count`` members, listening."""
    for _ in range(200):
        groups = groups_of(query, variables)
        if len(groups) == 1 and len(groups[0].members) == count:
            await asyncio.sleep(0.3)  # the group's stream is listening on the bus
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no group of {count} members: {[len(g.members) for g in groups_of(query, variables)]}")


async def test_public_subscribers_share_one_group_and_each_receives_the_post(stack: Stack) -> None:
    author, viewer = await make_user(), await make_user()
    token = await token_for(viewer)
    async with subscribers(stack, [(PUBLIC, None, None)] * 3 + [(PUBLIC, None, token), (PERSONAL, None, token)]) as subs:
        await members_of(PUBLIC, 4)  # anonymous and signed-in alike: the fields are public
        assert groups_of(PERSONAL) == []  # viewerHasLiked: its own execution
        await asyncio.sleep(0.3)
        post = await make_post(author)
        expected = {"id": gid("Post", post.id), "title": "Live", "author": {"nickname": author.nickname}}
        assert [await s.next() for s in subs[:4]] == [expected] * 4
        assert await subs[4].next() == {"id": gid("Post", post.id), "viewerHasLiked": False}


async def test_leaving_keeps_the_others_served_and_the_last_one_ends_the_group(stack: Stack) -> None:
    author = await make_user()
    async with subscribers(stack, [(PUBLIC, None, None)] * 3) as subs:
        await members_of(PUBLIC, 3)
        await subs[0].stop()
        await members_of(PUBLIC, 2)
        post = await make_post(author)
        assert [(await s.next())["id"] for s in subs[1:]] == [gid("Post", post.id)] * 2
        assert subs[0].received.empty()
    for _ in range(100):
        if not groups_of(PUBLIC):
            break
        await asyncio.sleep(0.05)
    assert groups_of(PUBLIC) == []


async def test_a_resume_runs_on_its_own_with_its_backlog(stack: Stack) -> None:
    author = await make_user()
    seen = await make_post(author)
    missed = [await make_post(author) for _ in range(2)]
    async with subscribers(stack, [(RESUME, {"after": gid("Post", seen.id)}, None), (RESUME, {"after": None}, None)]) as subs:
        assert [(await subs[0].next())["id"] for _ in missed] == [gid("Post", p.id) for p in missed]
        await members_of(RESUME, 1, {"after": None})  # no resume point: shared
        assert [len(g.members) for g in groups_of(RESUME, {"after": gid("Post", seen.id)})] == []
        live = await make_post(author)
        assert (await subs[0].next())["id"] == gid("Post", live.id)
        # Without a resume point it gets what is published once it listens: the live post (and
        # with Redis, the relay may still be delivering the earlier posts' events).
        got = [(await subs[1].next())["id"]]
        while got[-1] != gid("Post", live.id):
            got.append((await subs[1].next())["id"])
        assert set(got) <= {gid("Post", p.id) for p in (*missed, live)}
        assert subs[0].received.empty()  # no duplicates
