"""Strict global IDs for the root ``node`` / ``nodes`` fields (issue 10).

Every type's ``resolve_nodes`` turns the key inside a global ID into an integer; a key such as
``1.5``, ``0x1`` or one beyond 64 bits used to reach it and fail there (an internal error, or
the driver's overflow). This field extension checks the IDs first, as ``schema.base.decode_id``
does for use-case arguments, and bounds how many ``nodes`` may ask for at once.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.extensions import FieldExtension

from resolvers.errors import invalid

#: The most IDs one ``nodes`` call resolves (each type is one query, but the list is checked
#: and grouped in Python first).
NODES_MAX = 100
_KEY = re.compile(r"[1-9][0-9]{0,18}", flags=re.ASCII)


def _check(global_id: Any, field: str) -> None:
    node_id = getattr(global_id, "node_id", None)
    if not isinstance(node_id, str) or not _KEY.fullmatch(node_id) or int(node_id) > 2**63 - 1:
        raise invalid(field, "Expected a global ID of an object.")


class StrictNodeIds(FieldExtension):
    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        self._check(kwargs)
        return next_(source, info, **kwargs)

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any) -> Any:
        self._check(kwargs)
        result = next_(source, info, **kwargs)
        return await result if hasattr(result, "__await__") else result

    @staticmethod
    def _check(kwargs: dict[str, Any]) -> None:
        if "id" in kwargs:
            _check(kwargs["id"], "id")
        ids = kwargs.get("ids")
        if ids is not None:
            if len(ids) > NODES_MAX:
                raise invalid("ids", f"Ask for at most {NODES_MAX} IDs at once.")
            for global_id in ids:
                _check(global_id, "ids")
