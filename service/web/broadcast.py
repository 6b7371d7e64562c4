"""Live subscriptions rendered once per selection set and permission class (issue 15).

10,000 ``liveFeed`` subscribers used to cost 10,000 bus listeners, 10,000 GraphQL executions
and 10,000 JSON encodings per published post. Now graphql-transport-ws subscriptions that
share a document, variables and operation, and whose fields are the same for every viewer
(the *public* permission class: ``PUBLIC_FIELDS``), join one group per process: the group
runs the subscription once (anonymous context, fresh DataLoaders per event), encodes each
result once, and sends every member the same text frame (only the operation id differs:
a string concatenation per subscriber).

Anything else keeps its own execution: a viewer-dependent field (``viewerHasLiked``, a
product's visibility to the viewer, ...), a resume (``after`` given: the backlog is the
subscriber's own), other subscriptions, the legacy graphql-ws protocol.

Slow consumers: each member has at most ``MAX_BACKLOG`` frames waiting behind the one being
sent; one more and the socket is closed with 1013 "Try Again Later": the client reconnects
and resumes with ``after`` (the ID of the last post it received) from the stored stream,
rather than the server buffering without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from functools import lru_cache
from typing import Any

import orjson
import structlog
from graphql import (
    FieldNode, GraphQLSchema, OperationDefinitionNode, OperationType, TypeInfo, TypeInfoVisitor,
    VariableNode, Visitor, get_named_type, parse, validate, visit,
)  # fmt: skip
from graphql.language import NullValueNode
from strawberry.types import ExecutionResult

from resolvers.accounts.auth import ANONYMOUS
from schema.context import Context, Loaders

log = structlog.get_logger("kameng.ws")

#: Root subscription fields a group may serve (public data, the same for every viewer).
SHAREABLE_ROOTS = frozenset({"liveFeed"})
#: Fields whose value does not depend on who is asking (``__typename`` everywhere too).
PUBLIC_FIELDS = frozenset({
    ("Subscription", "liveFeed"),
    *(("Post", f) for f in ("id", "kind", "title", "body", "bodyHtml", "rating", "verifiedPurchase", "likeCount",
                            "commentCount", "status", "createdAt", "editedAt", "author", "topics")),
    *(("User", f) for f in ("id", "nickname", "role", "tier", "createdAt")),
    *(("Topic", f) for f in ("id", "slug", "name", "description")),
})  # fmt: skip
#: Frames waiting for one member (behind the one being sent) before it is dropped.
MAX_BACKLOG = 100
TRY_AGAIN_LATER = 1013

Key = tuple[str, bytes, str | None]


@lru_cache(maxsize=256)
def _shape(graphql_schema: GraphQLSchema, query: str, operation_name: str | None) -> tuple[str, ...] | None:
    """The variables an ``after`` argument of a shareable document reads ("" for a literal),
    or None when the document cannot be shared."""
    try:
        document = parse(query)
    except Exception:
        return None
    if validate(graphql_schema, document):
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
    if len(chosen) != 1 or chosen[0].operation != OperationType.SUBSCRIPTION:
        return None
    roots = chosen[0].selection_set.selections
    if len(roots) != 1 or not isinstance(roots[0], FieldNode) or roots[0].name.value not in SHAREABLE_ROOTS:
        return None
    after: list[str] = []
    for argument in roots[0].arguments or ():
        if argument.name.value != "after" or isinstance(argument.value, NullValueNode):
            continue
        if not isinstance(argument.value, VariableNode):
            return None  # a literal resume point: the subscriber's own backlog
        after.append(argument.value.name.value)
    type_info = TypeInfo(graphql_schema)
    private: list[str] = []

    class Fields(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            parent = type_info.get_parent_type()
            name = node.name.value
            if name != "__typename" and (parent is None or (get_named_type(parent).name, name) not in PUBLIC_FIELDS):
                private.append(name)

    visit(document, TypeInfoVisitor(type_info, Fields()))
    return None if private else tuple(after)


def share_key(graphql_schema: GraphQLSchema, query: str, variables: dict[str, Any] | None,
              operation_name: str | None) -> Key | None:
    """The group of a subscription, or None when it must run on its own."""
    if not isinstance(query, str):
        return None
    after = _shape(graphql_schema, query, operation_name)
    if after is None or any((variables or {}).get(name) is not None for name in after):
        return None
    try:
        encoded = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return query, encoded, operation_name


class _Member:
    __slots__ = ("handler", "prefix", "backlog", "sender", "finished")

    def __init__(self, handler: Any, operation_id: str, finished: asyncio.Future[None]) -> None:
        self.handler = handler
        self.prefix = '{"id":' + orjson.dumps(operation_id).decode() + ',"type":"next","payload":'
        self.backlog: deque[str] | None = None  # frames behind the one being sent
        self.sender: asyncio.Task[None] | None = None
        self.finished = finished

    def push(self, payload: str) -> None:
        frame = self.prefix + payload + "}"
        if self.sender is None:
            self.sender = asyncio.ensure_future(self._send(frame))
        elif self.backlog is None:
            self.backlog = deque((frame,))
        elif len(self.backlog) < MAX_BACKLOG:
            self.backlog.append(frame)
        else:
            self.drop()

    async def _send(self, frame: str) -> None:
        guard = getattr(self.handler, "guard", None)
        try:
            while True:
                if guard is None or guard.allows_sending():
                    await self.handler.websocket.ws.send_text(frame)
                if not self.backlog:
                    break
                frame = self.backlog.popleft()
        except Exception:  # the socket went away: its own handler cleans up
            self.end()
        finally:
            self.sender = None
            self.backlog = None

    def drop(self) -> None:
        log.info("ws.slow_consumer_dropped", backlog=MAX_BACKLOG)
        self.backlog = None
        self.end()
        with contextlib.suppress(Exception):
            asyncio.ensure_future(self.handler.websocket.ws.close(
                code=TRY_AGAIN_LATER, reason="Too slow: reconnect and resume with after"))  # fmt: skip

    def end(self, error: BaseException | None = None) -> None:
        if not self.finished.done():
            if error is None:
                self.finished.set_result(None)
            else:
                self.finished.set_exception(error)


class _Group:
    def __init__(self, groups: dict[Key, _Group], key: Key, schema: Any, variables: dict[str, Any] | None,
                 request: Any) -> None:
        self.groups = groups
        self.key = key
        self.schema = schema
        self.variables = variables
        self.context = Context(request=request, response=None, actor=ANONYMOUS)
        self.members: dict[_Member, None] = {}
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        query, _, operation_name = self.key
        error: BaseException | None = None
        try:
            source = await self.schema.stream(
                query, variable_values=self.variables, context_value=self.context, operation_name=operation_name
            )
            async with contextlib.aclosing(source):
                async for result in source:
                    self.context.loaders = Loaders()  # nothing cached from one event to the next
                    if not isinstance(result, ExecutionResult):
                        continue
                    payload: dict[str, Any] = {"data": result.data}
                    if result.errors:
                        payload["errors"] = [e.formatted for e in result.errors]
                    if result.extensions:
                        payload["extensions"] = result.extensions
                    text = orjson.dumps(payload).decode()
                    for member in list(self.members):
                        member.push(text)
        except asyncio.CancelledError:
            error = ConnectionAbortedError("the live group was stopped")
            raise
        except Exception as exc:
            error = exc
        finally:
            if self.groups.get(self.key) is self:
                del self.groups[self.key]
            for member in list(self.members):
                member.end(error)

    def leave(self, member: _Member) -> None:
        self.members.pop(member, None)
        if not self.members and not self.task.done():
            if self.groups.get(self.key) is self:
                del self.groups[self.key]
            self.task.cancel()


_groups: dict[Key, _Group] = {}


def group_count() -> int:
    return len(_groups)


async def follow(key: Key, handler: Any, operation_id: str, variables: dict[str, Any] | None) -> None:
    """Serve one subscription from its group until the group's stream ends (returns), fails
    (raises) or the member is dropped as too slow (returns); cancelled when the client
    completes the operation or goes away."""
    group = _groups.get(key)
    if group is None or group.task.done():
        group = _groups[key] = _Group(_groups, key, handler.schema, variables, handler.context.request)
    member = _Member(handler, operation_id, asyncio.get_running_loop().create_future())
    group.members[member] = None
    try:
        await member.finished
    finally:
        group.leave(member)
        if member.sender is not None:
            member.sender.cancel()
