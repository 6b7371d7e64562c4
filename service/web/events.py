"""``POST /events``: the cheap door for behaviour-event batches, beside the GraphQL ``track``.

The same use case (``resolvers.discovery.ingest.track``: validation, rate limits, buffering)
behind a route that decodes its JSON body with one ``orjson.loads`` and a hand-written check
of each event's fields, instead of graphql-core's variable coercion and Strawberry's
conversion of 500 input objects (~250 ms of CPU per 500 events, bench/README.md). The body
is the ``TrackInput`` of ``track`` as JSON, with the same names and rules:

    {"deviceId": "...", "events": [{"eventId": "...", "kind": "PRODUCT_VIEW",
      "clientTime": "2026-01-01T00:00:00Z", "productId": "<global ID>", ...}]}

Authentication as /graphql (``Authorization: Bearer <access token>``, else a guest; a bad
token is 401). Answers: 200 ``{"accepted": n}``; 400 ``{"errors": [{"code", "field",
"message"}]}`` for bad input (the batch is all or nothing, fields ``events.<index>.<name>``
as ``track`` names them); 429 the same shape when RATE_LIMITED; 415 for a body that is not
JSON. Bounded by the same body-size and JSON-depth limits as /graphql (service/web/limits.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from resolvers.accounts.auth import Actor, authenticate
from resolvers.discovery import ingest
from resolvers.errors import ErrorCode, UserFacingError, invalid
from schema.base import decode_id
from service.web.view import _bearer, _client_ip

#: JSON field -> (its place in ingest.ClientEvent, node type of a global ID or None for text).
_OPTIONAL = {
    name: (ingest.ClientEvent._fields.index(attribute), node)
    for name, attribute, node in (
        ("productId", "product_id", "Product"), ("postId", "post_id", "Post"), ("topicId", "topic_id", "Topic"),
        ("query", "query", None), ("surface", "surface", None), ("token", "token", None), ("path", "path", None),
    )
}
_KNOWN = frozenset({"eventId", "kind", "clientTime", *_OPTIONAL})
_STATUS = {ErrorCode.RATE_LIMITED: 429, ErrorCode.UNAUTHENTICATED: 401}


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _refusal(error: UserFacingError) -> Response:
    return _answer(_STATUS.get(error.code, 400), {"errors": [
        {"code": error.code.value, "field": error.field, "message": error.message}]})


def _text(value: object, field: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise invalid(field, "Expected a string.")
    return value


async def decode(body: Any, max_events: int) -> tuple[str | None, list[ingest.ClientEvent]]:
    """The device id and the events of a decoded JSON body, or INVALID_INPUT naming the field.
    Only the shape is checked here (types, names, global IDs, the time's format); every rule
    of the events themselves is ``ingest.track``'s, as for the GraphQL ``track``. Yields to the
    event loop every ``ingest.YIELD_EVERY`` events, so that other requests are not held up
    behind a whole batch."""
    if not isinstance(body, dict):
        raise invalid("input", "Send a JSON object with `events` (and `deviceId`).")
    if unknown := set(body) - {"deviceId", "events"}:
        raise invalid(sorted(unknown)[0], "Unknown field.")
    device_id = _text(body.get("deviceId"), "deviceId")
    raw_events = body.get("events")
    if not isinstance(raw_events, list):
        raise invalid("events", "Expected a list of events.")
    if len(raw_events) > max_events:  # before decoding any of them
        raise invalid("events", f"Send at most {max_events} events per request.")
    events = []
    for index, raw in enumerate(raw_events):
        if index and not index % ingest.YIELD_EVERY:
            await asyncio.sleep(0)
        if not isinstance(raw, dict):
            raise invalid(f"events.{index}", "Expected an event object.")
        if not _KNOWN.issuperset(raw):
            raise invalid(f"events.{index}.{sorted(set(raw) - _KNOWN)[0]}", "Unknown field.")
        event_id, kind, stamp = raw.get("eventId"), raw.get("kind"), raw.get("clientTime")
        if type(event_id) is not str:
            raise invalid(f"events.{index}.eventId", "Expected a string.")
        if type(kind) is not str:
            raise invalid(f"events.{index}.kind", "Expected a string.")
        if type(stamp) is not str:
            raise invalid(f"events.{index}.clientTime", "Expected a string.")
        try:
            client_time = datetime.fromisoformat(stamp)
        except ValueError:
            raise invalid(f"events.{index}.clientTime", "Expected an ISO 8601 date and time.") from None
        if len(raw) == 3:
            events.append(ingest.ClientEvent(event_id, kind, client_time))
            continue
        values: list[Any] = [event_id, kind, client_time, None, None, None, None, None, None, None]
        for name, value in raw.items():  # the optional fields, only those sent
            found = _OPTIONAL.get(name)
            if found is None or value is None:
                continue
            slot, node = found
            text = _text(value, f"events.{index}.{name}")
            values[slot] = decode_id(text, node, f"events.{index}.{name}") if node else text  # type: ignore[arg-type]
        events.append(ingest.ClientEvent._make(values))
    return device_id, events


async def track_events(request: Request) -> Response:
    from kameng.settings import get_settings

    scope = request.scope
    token = _bearer(request.headers.get("authorization"))
    user_agent = request.headers.get("user-agent", "")
    actor = Actor(ip=_client_ip(scope), user_agent=user_agent)
    if token is not None:
        try:
            actor = await authenticate(token, ip=_client_ip(scope), user_agent=user_agent)
        except UserFacingError as error:
            return _refusal(UserFacingError(ErrorCode.UNAUTHENTICATED, error.message))
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _answer(415, {"errors": [{"code": ErrorCode.INVALID_INPUT.value, "field": None,
                                         "message": "The body is not JSON."}]})
    try:
        device_id, events = await decode(body, get_settings().track_max_events)
        accepted = await ingest.track(actor, device_id, events)
    except UserFacingError as error:
        return _refusal(error)
    return _answer(200, {"accepted": accepted})
