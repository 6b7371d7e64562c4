"""Reading a notification's data as the reader may see it: the two helpers every typed payload
uses (schema/accounts/notification_payloads.py and notification_payloads_loop.py)."""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from schema.base import graph_type
from schema.context import Info


async def node(info: Info, type_name: str, key: int | None) -> Any:
    """The object of the graph ``type_name`` keyed ``key``, as ``node(id:)`` would answer it;
    batched per type over the request, so a page of notifications costs a query per type."""
    if key is None:
        return None
    loaders = info.context.loaders.nodes
    if type_name not in loaders:
        node_type = graph_type(type_name)

        async def load(keys: list[str]) -> list[Any]:
            # resolve_nodes reads only the request's context (viewer, loaders) from info.
            return list(await node_type.resolve_nodes(info=info, node_ids=keys))

        loaders[type_name] = DataLoader(load)
    return await loaders[type_name].load(str(key))


def key(data: dict[str, Any], name: str) -> int:
    """A positive integer id from the data; ValueError/KeyError otherwise."""
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(name)
    return value


def optional_key(data: dict[str, Any], name: str) -> int | None:
    return key(data, name) if data.get(name) is not None else None
