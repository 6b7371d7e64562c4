"""Persisted queries: Apollo's automatic persisted queries (APQ) and trusted documents.

APQ (the protocol of Apollo Client's `createPersistedQueryLink`): a client first sends only
`extensions.persistedQuery.sha256Hash`; an unknown hash answers `PersistedQueryNotFound`
(message and code are what the link looks for), the client sends the query with its hash, the
server checks the hash and remembers the query, and from then on the hash alone is enough --
over POST, or over GET where a CDN can cache it. Queries are kept in Redis when configured
(shared by every API process, expiring), else in a bounded in-process LRU.

Trusted documents (`KAMENG_TRUSTED_DOCUMENTS`): a JSON file of {sha256: document} read at
start-up; only those documents run, by hash or by their exact text. Registering is refused,
so a stolen token cannot run a hand-written query against the API.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from strawberry.http import GraphQLRequestData

from kameng import runtime
from kameng.settings import ConfigurationError, Settings
from service.web.graphql_http import RequestError

_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def load_trusted_documents(path: Path) -> dict[str, str]:
    """{hash: document}; every hash must be the document's sha256, or start-up stops."""
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ConfigurationError(f"KAMENG_TRUSTED_DOCUMENTS: cannot read {path}: {error}") from None
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ConfigurationError(f"KAMENG_TRUSTED_DOCUMENTS: {path} must be a JSON object of {{sha256: document}}.")
    for digest, document in raw.items():
        if digest.lower() != sha256(document):
            raise ConfigurationError(f"KAMENG_TRUSTED_DOCUMENTS: {digest} is not the sha256 of its document.")
    return {digest.lower(): document for digest, document in raw.items()}


class MemoryStore:
    """Registered queries in this process, least recently used dropped first."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._queries: OrderedDict[str, str] = OrderedDict()

    async def get(self, digest: str) -> str | None:
        query = self._queries.get(digest)
        if query is not None:
            self._queries.move_to_end(digest)
        return query

    async def put(self, digest: str, query: str) -> None:
        self._queries[digest] = query
        self._queries.move_to_end(digest)
        while len(self._queries) > self.maxsize:
            self._queries.popitem(last=False)


class RedisStore:
    """Registered queries shared by every API process; unused ones expire."""

    def __init__(self, namespace: str, ttl_seconds: int) -> None:
        self.prefix, self.ttl = f"{namespace}:apq:", ttl_seconds

    async def get(self, digest: str) -> str | None:
        client = runtime.redis()
        assert client is not None
        value = await client.getex(self.prefix + digest, ex=self.ttl)  # in use: keep it
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, digest: str, query: str) -> None:
        client = runtime.redis()
        assert client is not None
        await client.set(self.prefix + digest, query, ex=self.ttl)


def not_found() -> RequestError:
    # Apollo Server answers it with 200 under application/json; the spec wants a 4xx for a
    # response without data under application/graphql-response+json. no-store either way, so
    # no cache keeps the miss after the query is registered.
    return RequestError(404, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND", json_status=200)


class PersistedQueries:
    """Turns a request naming a persisted query into one carrying its text, or refuses it."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.persisted_queries
        self.trusted = (
            load_trusted_documents(settings.trusted_documents) if settings.trusted_documents is not None else None
        )
        self._memory = MemoryStore(settings.persisted_query_cache_size)
        self._redis = RedisStore(settings.namespace, settings.persisted_query_ttl_seconds)

    def _store(self) -> MemoryStore | RedisStore:
        return self._redis if runtime.redis() is not None else self._memory

    async def resolve(self, request: GraphQLRequestData) -> GraphQLRequestData:
        digest = _requested_hash(request.extensions)
        if self.trusted is not None:
            return self._trusted(request, digest)
        if digest is None:
            return request
        if not self.enabled:
            raise RequestError(400, "PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
        if request.query is None:
            request.query = await self._store().get(digest)
            if request.query is None:
                raise not_found()
            return request
        if sha256(request.query) != digest:
            raise RequestError(400, "provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
        await self._store().put(digest, request.query)
        return request

    def _trusted(self, request: GraphQLRequestData, digest: str | None) -> GraphQLRequestData:
        assert self.trusted is not None
        if request.query is not None:
            digest = sha256(request.query)  # the exact text of a trusted document is as good as its hash
        document = self.trusted.get(digest) if digest is not None else None
        if document is None:
            raise RequestError(
                400,
                "This server only runs trusted documents: send the sha256Hash of an operation in its list.",
                "PERSISTED_QUERY_NOT_IN_LIST",
            )
        request.query = document
        return request

    def allows(self, query: str) -> bool:
        """Whether a document may run at all (the WebSocket path has no hash to look up)."""
        return self.trusted is None or sha256(query) in self.trusted


def _requested_hash(extensions: dict[str, Any] | None) -> str | None:
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    if not isinstance(persisted, dict) or persisted.get("version") != 1 or not isinstance(digest, str) \
            or not _SHA256.fullmatch(digest.lower()):
        raise RequestError(400, "extensions.persistedQuery needs version 1 and a sha256Hash (64 hex digits).",
                           "PERSISTED_QUERY_INVALID")
    return digest.lower()
