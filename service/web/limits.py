"""Limits on what a client sends to /graphql over HTTP, before anything parses it (issue 10).

* Body size: a declared ``Content-Length`` over the limit is refused without reading a byte;
  a streamed body is counted as it arrives and refused as soon as it passes the limit, so a
  25 MB body costs at most the limit in memory. 413.
* JSON nesting: a body nested deeper than the limit is refused before it is decoded (Python's
  json module would raise RecursionError, a raw 500). 400.

Refusals are JSON GraphQL errors (``extensions.code``), as every other answer of /graphql.
"""

from __future__ import annotations

import re

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON strings (with their escapes) hold no structure: removed before counting brackets.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: runs, not a char at a time
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")


def json_depth(body: bytes, limit: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``body`` (malformed JSON: a best guess;
    the decoder reports the syntax error itself). Counting stops past ``limit``.

    Each pass deletes the innermost pairs (``[]`` or ``{}`` with nothing between them) in one
    ``re.sub``: the number of passes is the depth, and a wide body (500 events) costs a few
    C-speed passes instead of a Python step per bracket."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    while brackets and (limit is None or depth <= limit):
        shorter = _INNERMOST.sub(b"", brackets)
        if len(shorter) == len(brackets):  # unbalanced or mismatched: walk what is left
            return depth + _walk(shorter)
        brackets = shorter
        depth += 1
    return depth


def _walk(brackets: bytes) -> int:
    depth = deepest = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware for the HTTP requests of ``paths``: body size and JSON depth."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int,
                 paths: frozenset[str] = frozenset({"/graphql"}), depth_paths: frozenset[str] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.paths = paths
        # Where the depth is counted too (default: every path). POST /events needs only the
        # size: orjson refuses nesting past 1,024 without recursing, and its decoder takes
        # flat events only, so counting would cost ~1.5 ms a batch for nothing.
        self.depth_paths = paths if depth_paths is None else depth_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        too_large = f"The request body is larger than {self.max_body_bytes} bytes."
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(send, 413, "REQUEST_TOO_LARGE", too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _refuse(send, 413, "REQUEST_TOO_LARGE", too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["path"] in self.depth_paths and (
            content_type in (b"application/json", b"application/graphql-response+json", b"")
            or content_type.endswith(b"+json")
        ):
            if json_depth(body, self.max_json_depth) > self.max_json_depth:
                await _refuse(
                    send, 400, "BAD_REQUEST", f"The JSON body is nested deeper than {self.max_json_depth} levels."
                )
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
