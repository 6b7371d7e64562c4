"""The response cache of anonymous public queries (issue 15 item 1).

*What is cached.* An anonymous (no ``Authorization``) GET of ``/graphql`` without ``Origin``
whose document is a query selecting only fields in ``CACHEABLE`` (the product pages: the same
answer for every anonymous viewer, every one of them tagged while it executes), answered 200
without errors, without headers a resolver set. Anything personal -- ``viewer``, balances,
owners, a shop's private fields -- is not in ``CACHEABLE``, so a document selecting it is run
every time. The key: the normalised document (``documents.cache_key``: comments and
insignificant whitespace stripped), the operation name, the variables (canonical JSON) and
the media type answered.

*Where hits are served.* ``CachedResponses`` is the outermost middleware: a hit answers there,
before the request-id/log middleware and before any GraphQL work (a log line per
``HIT_LOG_EVERY`` hits, with the count). A miss goes on as usual with the key, the cache's
generation at its start and an empty tag set in the request's state; the view
(service/web/view.py) stores the body when it is public.

*Invalidation.* Execution records tags (subscriptions/cache_tags.py); writes ``touch`` them.
``invalidate`` drops the entries of a tag and remembers the generation at which the tag last
changed; ``put`` refuses an entry one of whose tags changed after the request started (the
response may hold what was there before the change). Other processes are told through Redis
(service/web/cache_sync.py). Entries also expire after ``KAMENG_RESPONSE_CACHE_TTL`` seconds,
only as a safety net. ``ETag`` is the entry's, computed once when stored.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import structlog
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    parse,
    visit,
)
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from kameng.settings import Settings
from schema import documents
from service.web import cache_sync, graphql_http, http_caching
from subscriptions import cache_tags

log = structlog.get_logger("kameng.http")

ANY = frozenset({"*"})
PRODUCT_FIELDS = frozenset({
    "id", "title", "description", "price", "deliveryKind", "status", "soldCount", "reviewCount", "minQuantity",
    "maxQuantity", "createdAt", "updatedAt", "rating", "wholesaleTiers", "validityDays", "planMinDays",
    "planMaxDays", "deliveryPromise", "stock", "merchant",
})
#: Fields whose value is the same for every anonymous viewer and is tagged while executing;
#: a document selecting anything else is not cached. An allow-list, as http_caching's.
CACHEABLE: dict[str, frozenset[str]] = {
    "Query": frozenset({"products", "product"}),
    "ProductConnection": ANY, "ProductEdge": ANY, "PageInfo": ANY,
    "Product": PRODUCT_FIELDS,
    "Money": ANY, "WholesaleTier": ANY, "DeliveryPromise": ANY, "LateDeliveryCompensation": ANY,
    "Merchant": frozenset({"id", "name", "description", "status", "createdAt"}),
}
HIT_LOG_EVERY = 1000
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")  # as app.RequestContext accepts
CACHE_OUTCOMES = Counter("kameng_response_cache_total", "Response cache look-ups and stores by outcome", ["outcome"])
CACHE_INVALIDATIONS = Counter(
    "kameng_response_cache_invalidations_total", "Response cache invalidations by origin", ["origin"]
)
CACHE_DROPPED = Counter("kameng_response_cache_dropped_total", "Response cache entries dropped by invalidation")
_HIT, _MISS = CACHE_OUTCOMES.labels("hit"), CACHE_OUTCOMES.labels("miss")
_STORED, _REFUSED = CACHE_OUTCOMES.labels("stored"), CACHE_OUTCOMES.labels("refused")
_UNCACHEABLE = CACHE_OUTCOMES.labels("uncacheable")


@dataclass(slots=True)
class Entry:
    body: bytes
    etag: str
    content_type: str
    headers: list[tuple[bytes, bytes]]
    tags: frozenset[str]
    expires: float


@dataclass(slots=True)
class Miss:
    """What the view needs to store a miss's answer."""

    key: tuple[Any, ...]
    since: int
    tags: set[str] = field(default_factory=set)


class _Cacheable(Visitor):
    def __init__(self, info: TypeInfo) -> None:
        super().__init__()
        self.info, self.ok = info, True

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value == "__typename":
            return
        parent = self.info.get_parent_type()
        allowed = CACHEABLE.get(get_named_type(parent).name) if parent is not None else None
        if allowed is None or (allowed is not ANY and node.name.value not in allowed):
            self.ok = False


class ResponseCache:
    """Bounded LRU of answers by key, with a tag index and per-tag invalidation generations."""

    def __init__(self, settings: Settings, schema: GraphQLSchema | None = None, *, local: bool = True) -> None:
        self.enabled = settings.response_cache
        self.ttl, self.max_entries = settings.response_cache_ttl, settings.response_cache_entries
        self.max_age = settings.http_cache_max_age
        self.schema = schema
        self.origin = None if local else uuid.uuid4().hex  # None: this process's caches
        self._entries: OrderedDict[tuple[Any, ...], Entry] = OrderedDict()
        self._by_tag: dict[str, set[tuple[Any, ...]]] = {}
        self._changed: dict[str, int] = {}  # tag -> generation of its last invalidation
        self._floor = 0  # generation of tags forgotten from _changed
        self.generation = 0
        self._raw_keys: OrderedDict[tuple[bytes, bytes], tuple[Any, ...] | None] = OrderedDict()
        self._cacheable: dict[tuple[str, str | None], bool] = {}
        # Redis subscription (service/web/cache_sync.py): started, and up (nothing is stored before).
        self.listening = self.ready = False
        self.hits = 0
        if local:
            cache_tags.listen(self.invalidate)

    # -- keys -----------------------------------------------------------------------------

    def key_for(self, query_string: bytes, accept: bytes) -> tuple[Any, ...] | None:
        """The key of a GET (None: not a plain query the cache may answer), memoised by raw URL."""
        raw = (query_string, accept)
        try:
            return self._raw_keys[raw]
        except KeyError:
            pass
        key = self._compute_key(query_string, accept)
        self._raw_keys[raw] = key
        if len(self._raw_keys) > 4 * self.max_entries:
            self._raw_keys.popitem(last=False)
        return key

    @staticmethod
    def _compute_key(query_string: bytes, accept: bytes) -> tuple[Any, ...] | None:
        params = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        query = params.get("query")
        if not query or "extensions" in params or len(params.keys() - {"query", "operationName", "variables"}):
            return None
        try:
            variables = orjson.loads(params["variables"]) if params.get("variables") else None
        except orjson.JSONDecodeError:
            return None
        if variables is not None and not isinstance(variables, dict):
            return None
        try:
            normalised = documents.cache_key(query)
        except GraphQLError:
            return None
        canonical = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else b""
        media_type = graphql_http.negotiate(accept.decode("latin-1") or None)
        return (normalised, params.get("operationName") or None, canonical, media_type)

    def cacheable(self, normalised: str, operation_name: str | None) -> bool:
        """Whether the document is one query operation selecting only ``CACHEABLE`` fields."""
        known = self._cacheable.get((normalised, operation_name))
        if known is None:
            known = self._cacheable[(normalised, operation_name)] = self._check(normalised, operation_name)
            if len(self._cacheable) > 4096:
                self._cacheable.clear()
        return known

    def _check(self, normalised: str, operation_name: str | None) -> bool:
        if self.schema is None:
            return False
        try:
            document = parse(normalised)
        except GraphQLError:
            return False
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            operations = [d for d in operations if d.name is not None and d.name.value == operation_name]
        if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
            return False
        info = TypeInfo(self.schema)
        checker = _Cacheable(info)
        visit(document, TypeInfoVisitor(info, checker))
        return checker.ok

    # -- entries --------------------------------------------------------------------------

    def get(self, key: tuple[Any, ...]) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            self._drop(key)
            return None
        return entry

    def begin(self, key: tuple[Any, ...]) -> Miss:
        _MISS.inc()
        return Miss(key, self.generation)

    def put(self, miss: Miss, entry: Entry) -> bool:
        """Store unless a tag of the answer changed since the request started."""
        changed, floor = self._changed, self._floor
        if not self.ready or any(changed.get(tag, floor) > miss.since for tag in entry.tags):
            _REFUSED.inc()
            return False
        self._drop(miss.key)
        self._entries[miss.key] = entry
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(miss.key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))
        _STORED.inc()
        return True

    def _drop(self, key: tuple[Any, ...]) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    def invalidate(self, tags: frozenset[str] | list[str], origin: str = "local") -> None:
        self.generation += 1
        generation = self.generation
        changed = self._changed
        dropped = 0
        for tag in tags:
            changed[tag] = generation
            for key in list(self._by_tag.get(tag, ())):
                self._drop(key)
                dropped += 1
        if len(changed) > 50_000:  # forget old tags, conservatively: they all count as changed now
            changed.clear()
            self._floor = generation
        CACHE_INVALIDATIONS.labels(origin).inc()
        if dropped:
            CACHE_DROPPED.inc(dropped)

    def forget_all(self) -> None:
        self.ready = False
        self.generation += 1
        self._entries.clear()
        self._by_tag.clear()
        self._changed.clear()
        self._floor = self.generation

    def __len__(self) -> int:
        return len(self._entries)


def headers_of(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


class CachedResponses:
    """The outermost middleware: answers cache hits; marks cacheable misses for the view."""

    def __init__(self, app: ASGIApp, cache: ResponseCache, path: str = "/graphql") -> None:
        self.app, self.cache, self.path = app, cache, path
        self.vary = http_caching.vary(False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cache = self.cache
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET" or not cache.enabled:
            await self.app(scope, receive, send)
            return
        if not cache.listening:
            cache_sync.ensure_listening(cache)
        headers = headers_of(scope)
        accept = headers.get(b"accept", b"")
        if b"authorization" in headers or b"origin" in headers or b"text/html" in accept.lower():
            await self.app(scope, receive, send)
            return
        key = cache.key_for(scope["query_string"], accept)
        if key is None:
            await self.app(scope, receive, send)
            return
        entry = cache.get(key)
        if entry is not None:
            await self._hit(entry, headers, send)
            return
        miss = cache.begin(key)
        scope.setdefault("state", {})["response_cache"] = miss
        token = cache_tags.start_recording_into(miss.tags)
        try:
            await self.app(scope, receive, send)
        finally:
            cache_tags.stop_recording(token)

    async def _hit(self, entry: Entry, headers: dict[bytes, bytes], send: Send) -> None:
        _HIT.inc()
        cache = self.cache
        cache.hits += 1
        if cache.hits % HIT_LOG_EVERY == 1:
            log.info("http.cache_hit", path=self.path, hits=cache.hits, sampled_every=HIT_LOG_EVERY)
        request_id = headers.get(b"x-request-id", b"")
        if not _REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex.encode()
        out = [*entry.headers, (b"x-request-id", request_id), (b"x-kameng-cache", b"hit")]
        if http_caching.matches(headers.get(b"if-none-match", b"").decode("latin-1") or None, entry.etag):
            await send({"type": "http.response.start", "status": 304, "headers": out})
            await send({"type": "http.response.body", "body": b""})
            return
        out.append((b"content-length", str(len(entry.body)).encode()))
        out.append((b"content-type", entry.content_type.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": entry.body})


def entry_for(cache: ResponseCache, miss: Miss, body: bytes, etag: str, content_type: str) -> Entry:
    headers = [(k.encode(), v.encode()) for k, v in http_caching.public_headers(etag, cache.max_age, cors=False).items()]
    return Entry(body, etag, content_type, headers, frozenset(miss.tags), time.monotonic() + cache.ttl)


def uncacheable() -> None:
    _UNCACHEABLE.inc()
