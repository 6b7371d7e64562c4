"""GraphQL over HTTP: which media type a client gets, and which answers are request errors.

The spec (graphql.github.io/graphql-over-http) gives `application/graphql-response+json` its
own rules: a request error (the document does not parse or validate, the variables do not
coerce) answers 4xx with no `data` entry, so a client can tell it from a field error without
reading the body. `application/json` keeps its legacy shape (200, `"data": null`), which is
what every client written before the spec expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from graphql import GraphQLError
from starlette.responses import Response

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
CONTENT_TYPES = {
    GRAPHQL_RESPONSE_JSON: f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8",
    JSON: JSON,  # unchanged for the clients that already read it
}


def negotiate(accept: str | None) -> str:
    """The media type to answer with: the client's preference between the two we speak.

    No Accept header, or one naming neither (not even through a wildcard), gets
    `application/json`, as the spec recommends for legacy clients. On equal weight an explicit
    name beats a wildcard, and `application/json` wins a tie between wildcards.
    """
    if not accept:
        return JSON
    best: tuple[float, int, int] = (0.0, 0, 0)
    chosen = JSON
    for media_range in accept.split(","):
        name, *params = (part.strip() for part in media_range.split(";"))
        name = name.lower()
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        for candidate, preference in ((GRAPHQL_RESPONSE_JSON, 0), (JSON, 1)):
            if name == candidate:
                specificity = 2
            elif name in ("*/*", "application/*"):
                specificity = 1
            else:
                continue
            rank = (weight, specificity, preference)
            if weight > 0 and rank > best:
                best, chosen = rank, candidate
    return chosen


def is_request_error(data: object, errors: list[GraphQLError] | None) -> bool:
    """True when execution never started: no data and no error located in the result.

    A field error always carries a `path`; parse, validation, operation-selection and
    variable-coercion errors never do (graphql-core returns them with `data` None).
    """
    return data is None and bool(errors) and all(error.path is None for error in errors or ())


@dataclass
class RequestError(Exception):
    """A request refused before execution, answered in the GraphQL response shape.

    `json_status` is the status under `application/json` when it differs (an Apollo client
    expects PersistedQueryNotFound with 200 there; older versions give up on a 400).
    """

    status: int
    message: str
    code: str | None = None
    json_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, media_type: str) -> Response:
        error: dict[str, object] = {"message": self.message}
        if self.code:
            error["extensions"] = {"code": self.code}
        status = self.status
        if media_type == JSON and self.json_status is not None:
            status = self.json_status
        return Response(
            orjson.dumps({"errors": [error]}),
            status_code=status,
            headers={**self.headers, "Cache-Control": "private, no-store", "Content-Type": CONTENT_TYPES[media_type]},
        )
