"""HTTP caching of public answers: what a CDN or a browser may keep, and revalidation.

Only an anonymous GET query (plain or persisted) whose answer has no errors and whose root
fields are all in `PUBLIC_ROOT_FIELDS` is `public`: the same URL then gives the same answer
to every anonymous caller. The list is an allow-list on purpose -- a root field added later
stays private until someone decides its answer is the same for everyone. `orderLookup`
(a guest's order, found with its password) and `viewer` are never on it.

Everything else is `private, no-store`. `Vary` names what changes an answer for the same URL:
the caller (Authorization), the media type (Accept) and the CORS headers (Origin).
"""

from __future__ import annotations

import functools
import hashlib

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
)

PUBLIC_ROOT_FIELDS = frozenset({
    "__typename", "__schema", "__type",
    "products", "product", "merchant", "categories",
    "posts", "post", "topic", "feed",
    "rewards", "creatorLeaderboard",
    # Objects by ID answer as the anonymous viewer may see them: the same for every such caller.
    "node", "nodes",
})
VARY = ("Authorization", "Accept", "Origin")
PRIVATE = "private, no-store"


@functools.lru_cache(maxsize=512)
def root_fields(query: str, operation_name: str | None) -> frozenset[str] | None:
    """The root fields a query operation selects (through fragments too); None if not a query."""
    try:
        document = parse(query)
    except GraphQLError:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [d for d in operations if d.name is not None and d.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        return None
    names: set[str] = set()
    pending: list[SelectionSetNode] = [operations[0].selection_set]
    spread: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in spread:
                spread.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is None:
                    return None
                pending.append(fragment.selection_set)
    return frozenset(names)


def is_public(*, method: str, authorized: bool, has_errors: bool, query: str | None,
              operation_name: str | None) -> bool:
    if method != "GET" or authorized or has_errors or query is None:
        return False
    fields = root_fields(query, operation_name)
    return fields is not None and fields <= PUBLIC_ROOT_FIELDS


def etag(body: bytes, content_type: str) -> str:
    # The media type is part of the representation: the same JSON under another type is
    # another entity, and must not revalidate the first.
    return '"' + hashlib.sha256(content_type.encode() + b"\n" + body).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match uses."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == tag for c in candidates)


def vary(cors: bool) -> str:
    # Starlette's CORSMiddleware appends Origin itself; naming it twice would be noise.
    return ", ".join(name for name in VARY if not (cors and name == "Origin"))


def public_headers(tag: str, max_age: int, *, cors: bool) -> dict[str, str]:
    return {"Cache-Control": f"public, max-age={max_age}", "ETag": tag, "Vary": vary(cors)}


def private_headers(*, cors: bool) -> dict[str, str]:
    return {"Cache-Control": PRIVATE, "Vary": vary(cors)}
