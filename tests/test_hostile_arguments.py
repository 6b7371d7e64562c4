"""Every String, ID and Decimal argument of every query and mutation (and every such field of
their input objects), found by introspection, against each hostile value class (issue 10):
NUL, a lone surrogate, 10,000 characters, IDs beyond 64 bits or not integers, huge or
foreign-digit decimals. None may reach an internal error; the ones that cannot be valid must
be refused (INVALID_INPUT or another expected error, or a null for lookups).

One request per (argument, class), as an ADMIN who owns a shop, so that permission checks let
the value reach the parsers and the database (on PostgreSQL: the column lengths), and again
anonymously."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from strawberry.relay import GlobalID

from models.accounts.users import Role, User
from models.community.posts import Post, PostKind
from tests.conftest import Client
from tests.factories import make_merchant, make_product, make_user, token_for

INTROSPECTION = """{ __schema { queryType { name } mutationType { name } types { name kind
  fields { name args { name defaultValue type { ...T } } type { ...T } }
  inputFields { name defaultValue type { ...T } } enumValues { name } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }"""

LONG = "x" * 10_000
TEXT_CLASSES = {"nul": "a\x00b", "surrogate": "x\ud800y", "long": LONG}
DECIMAL_CLASSES = {"1e30": "1e30", "1e999999": "1e999999", "nines": "9" * 31, "arabic": "\u0661\u0662", "nan": "NaN"}
#: Strings the schema must refuse before anything runs, whatever the argument.
REFUSED_AT_THE_DOOR = {"nul", "surrogate"}
#: Arguments that may legitimately hold 10,000 characters: a post's Markdown body (TEXT,
#: at most 20,000) and the Relay clientMutationId that checkIn takes and stores nowhere.
LONG_TEXT_OK = {("createPost", ("input", "body")), ("editPost", ("input", "body")),
                ("checkIn", ("input", "clientMutationId"))}


def id_classes(kind: str) -> dict[str, str]:
    def gid(raw: str) -> str:
        return str(GlobalID(kind, raw))
    return {"id-65bit": gid("18446744073709551616"), "id-float": gid("1.5"), "id-hex": gid("0x1"), "id-empty": gid("")}


@dataclass(frozen=True)
class Slot:
    """One place a hostile value goes: ``path`` is the argument then the input fields."""

    operation: str  # "query" or "mutation"
    field: str
    path: tuple[str, ...]
    scalar: str  # String, ID or Decimal
    is_list: bool


def unwrap(type_: dict[str, Any]) -> tuple[dict[str, Any], bool, bool]:
    """(named type, is a list, outer non-null)."""
    non_null = type_["kind"] == "NON_NULL"
    is_list = False
    while type_["kind"] in ("NON_NULL", "LIST"):
        is_list = is_list or type_["kind"] == "LIST"
        type_ = type_["ofType"]
    return type_, is_list, non_null


class SchemaWalk:
    def __init__(self, introspection: dict[str, Any], ids: dict[str, str]) -> None:
        schema = introspection["__schema"]
        self.types = {t["name"]: t for t in schema["types"]}
        self.roots = {"query": schema["queryType"]["name"], "mutation": schema["mutationType"]["name"]}
        self.ids = ids

    def slots(self) -> Iterator[Slot]:
        for operation, root in self.roots.items():
            for field in self.types[root]["fields"]:
                for arg in field["args"]:
                    yield from self._slots(operation, field["name"], (arg["name"],), arg["type"], set())

    def _slots(self, operation: str, field: str, path: tuple[str, ...], type_: dict[str, Any],
               seen: set[str]) -> Iterator[Slot]:
        named, is_list, _ = unwrap(type_)
        if named["name"] in ("String", "ID", "Decimal"):
            yield Slot(operation, field, path, named["name"], is_list)
        elif named["kind"] == "INPUT_OBJECT" and named["name"] not in seen:
            for sub in self.types[named["name"]]["inputFields"]:
                yield from self._slots(operation, field, (*path, sub["name"]), sub["type"], seen | {named["name"]})

    # -- values that are valid enough to let the hostile one be looked at

    def baseline(self, name: str, type_: dict[str, Any]) -> Any:
        named, is_list, _ = unwrap(type_)
        value = self._scalar_baseline(name, named)
        return [value] if is_list else value

    def _scalar_baseline(self, name: str, named: dict[str, Any]) -> Any:
        kind, type_name = named["kind"], named["name"]
        if kind == "ENUM":
            return self.types[type_name]["enumValues"][0]["name"]
        if kind == "INPUT_OBJECT":
            return {
                f["name"]: self.baseline(f["name"], f["type"])
                for f in self.types[type_name]["inputFields"]
                if f["type"]["kind"] == "NON_NULL" and f["defaultValue"] is None
            }
        return {
            "ID": self.ids.get(guess_kind(name, self.types), self.ids["Order"]),
            # Unique: an idempotency key seen before would replay the first request.
            "String": f"hostile-{uuid.uuid4().hex}",
            "Decimal": "1.00",
            "Int": 1,
            "Float": 1.0,
            "Boolean": False,
            "DateTime": "2026-01-01T00:00:00+00:00",
            "JSON": {},
        }.get(type_name, "x")

    def request(self, slot: Slot, value: Any) -> tuple[str, dict[str, Any]]:
        """A document calling ``slot.field`` with ``value`` at ``slot.path``, through variables."""
        root = self.types[self.roots[slot.operation]]
        field = next(f for f in root["fields"] if f["name"] == slot.field)
        variables: dict[str, Any] = {}
        definitions, arguments = [], []
        for arg in field["args"]:
            required = arg["type"]["kind"] == "NON_NULL" and arg["defaultValue"] is None
            if arg["name"] != slot.path[0] and not required:
                continue
            current = self.baseline(arg["name"], arg["type"])
            if arg["name"] == slot.path[0]:
                current = self._place(current, arg["type"], slot.path[1:], value, slot.is_list)
            variables[arg["name"]] = current
            definitions.append(f"${arg['name']}: {type_ref(arg['type'])}")
            arguments.append(f"{arg['name']}: ${arg['name']}")
        head = f"{slot.operation} Hostile({', '.join(definitions)})" if definitions else slot.operation
        call = f"{slot.field}({', '.join(arguments)})" if arguments else slot.field
        return f"{head} {{ result: {call}{self.selection(field['type'])} }}", variables

    def _place(self, current: Any, type_: dict[str, Any], rest: tuple[str, ...], value: Any, is_list: bool) -> Any:
        if not rest:
            return [value] if is_list else value
        named, _, _ = unwrap(type_)
        sub = next(f for f in self.types[named["name"]]["inputFields"] if f["name"] == rest[0])
        inner = dict(current[0] if isinstance(current, list) else current)
        inner[rest[0]] = self._place(inner.get(rest[0]) or self.baseline(rest[0], sub["type"]), sub["type"],
                                     rest[1:], value, is_list)
        return [inner] if isinstance(current, list) else inner

    def selection(self, type_: dict[str, Any]) -> str:
        named, _, _ = unwrap(type_)
        if named["kind"] in ("SCALAR", "ENUM"):
            return ""
        fields = {f["name"] for f in self.types[named["name"]]["fields"] or []}
        parts = ["__typename"]
        if "errors" in fields:
            parts.append("errors { code field }")
        if "id" in fields:
            parts.append("id")
        if "edges" in fields:
            parts.append("edges { cursor }")
        return " { " + " ".join(parts) + " }"


def type_ref(type_: dict[str, Any]) -> str:
    if type_["kind"] == "NON_NULL":
        return type_ref(type_["ofType"]) + "!"
    if type_["kind"] == "LIST":
        return f"[{type_ref(type_['ofType'])}]"
    return type_["name"]


def guess_kind(name: str, types: dict[str, Any]) -> str:
    """``productId`` -> Product, ``userIds`` -> User; else Order."""
    for suffix in ("Ids", "Id"):
        if name.endswith(suffix) and len(name) > len(suffix):
            kind = name[: -len(suffix)]
            kind = kind[0].upper() + kind[1:]
            if kind in types:
                return kind
    return "Order"


def error_codes(body: dict[str, Any]) -> list[str]:
    return [(e.get("extensions") or {}).get("code", "") for e in body.get("errors") or []]


def outcome(body: dict[str, Any]) -> str:
    """"refused" (a request error or a payload's UserErrors), "null" (a lookup found nothing)
    or "accepted"."""
    if body.get("errors"):
        return "refused"
    result = (body.get("data") or {}).get("result")
    if result is None:
        return "null"
    if isinstance(result, dict) and result.get("errors"):
        return "refused"
    if isinstance(result, dict) and result.get("edges") == []:
        return "null"
    if isinstance(result, list) and all(item is None for item in result):
        return "null"
    return "accepted"


async def post_ascii(client: Client, document: str, variables: dict[str, Any]) -> Any:
    """JSON escaped to ASCII, so that lone surrogates travel as \\ud800."""
    headers = {"x-forwarded-for": client.ip, "content-type": "application/json"}
    if client.token:
        headers["authorization"] = f"Bearer {client.token}"
    return await client.http.post("/graphql", content=json.dumps({"query": document, "variables": variables}),
                                  headers=headers)


async def fixture_ids(admin: User) -> dict[str, str]:
    merchant = await make_merchant(admin)
    product = await make_product(merchant, keys=2)
    post = await Post.create(author=admin, kind=PostKind.GUIDE, title="Guide", body="Body", body_html="<p>Body</p>")
    buyer = await make_user()
    return {
        "Merchant": str(GlobalID("Merchant", str(merchant.id))),
        "Product": str(GlobalID("Product", str(product.id))),
        "User": str(GlobalID("User", str(buyer.id))),
        "Post": str(GlobalID("Post", str(post.id))),
        "Order": str(GlobalID("Order", "1")),
    }


@pytest.mark.parametrize("who", ["admin", "anonymous"])
async def test_every_string_id_and_decimal_argument_refuses_hostile_values(who: str, make_client) -> None:  # type: ignore[no-untyped-def]
    """As an ADMIN who owns a shop (permission checks let the value through), and anonymous
    (the guest paths: sign-up, sign-in, guest orders and lookups)."""
    admin = await make_user(Role.ADMIN, "Admin")
    ids = await fixture_ids(admin)
    introspection = (await make_client().post(INTROSPECTION)).json()["data"]
    walk = SchemaWalk(introspection, ids)
    slots = list(walk.slots())
    assert len(slots) > 100  # the walk found the schema's arguments, not a handful

    sent = 0
    failures: list[str] = []
    by_class: dict[str, dict[str, int]] = {}
    for slot in slots:
        client = make_client()
        if who == "admin":
            client.token = await token_for(admin)  # a fresh session: `logout` may end the previous one
        classes = dict(TEXT_CLASSES)
        if slot.scalar == "ID":
            classes |= id_classes(guess_kind(slot.path[-1], walk.types))
        else:
            classes |= DECIMAL_CLASSES
        for name, value in classes.items():
            document, variables = walk.request(slot, value)
            response = await post_ascii(client, document, variables)
            sent += 1
            where = f"{slot.operation} {slot.field}({'.'.join(slot.path)}) <- {name}"
            if response.status_code >= 500:
                failures.append(f"{where}: HTTP {response.status_code} {response.text[:200]}")
                continue
            body = response.json()
            if "INTERNAL_SERVER_ERROR" in error_codes(body):
                failures.append(f"{where}: internal error")
                continue
            result = outcome(body)
            by_class.setdefault(name, {}).setdefault(result, 0)
            by_class[name][result] += 1
            must_refuse = (
                name in REFUSED_AT_THE_DOOR
                or (slot.scalar == "Decimal")
                or (slot.scalar == "ID" and name != "long")
                or (name == "long" and (slot.field, slot.path) not in LONG_TEXT_OK)
            )
            if name in REFUSED_AT_THE_DOOR or slot.scalar == "Decimal":
                if error_codes(body) != ["INVALID_INPUT"]:
                    failures.append(f"{where}: expected INVALID_INPUT, got {json.dumps(body)[:200]}")
            elif must_refuse and result == "accepted":
                failures.append(f"{where}: accepted {json.dumps(body)[:200]}")
    print(f"hostile arguments ({who}): {len(slots)} slots, {sent} requests, outcomes by class: {by_class}")
    assert not failures, "\n".join(failures)


def test_the_walk_reaches_nested_input_fields_and_lists() -> None:
    """The walker itself: nested input fields are reached, lists wrap the value, required
    siblings get a baseline, optional ones are left out."""
    types = {
        "Query": {"name": "Query", "kind": "OBJECT", "fields": [], "inputFields": None, "enumValues": None},
        "Mutation": {"name": "Mutation", "kind": "OBJECT", "inputFields": None, "enumValues": None, "fields": [
            {"name": "doIt", "type": {"kind": "OBJECT", "name": "P", "ofType": None}, "args": [
                {"name": "input", "defaultValue": None, "type": {"kind": "NON_NULL", "name": None,
                                                                 "ofType": {"kind": "INPUT_OBJECT", "name": "In", "ofType": None}}},
            ]},
        ]},
        "P": {"name": "P", "kind": "OBJECT", "inputFields": None, "enumValues": None,
              "fields": [{"name": "errors", "args": [], "type": {"kind": "LIST", "name": None, "ofType": None}}]},
        "In": {"name": "In", "kind": "INPUT_OBJECT", "fields": None, "enumValues": None, "inputFields": [
            {"name": "productId", "defaultValue": None, "type": {"kind": "NON_NULL", "name": None,
                                                                 "ofType": {"kind": "SCALAR", "name": "ID", "ofType": None}}},
            {"name": "tags", "defaultValue": None, "type": {"kind": "LIST", "name": None,
                                                            "ofType": {"kind": "SCALAR", "name": "String", "ofType": None}}},
        ]},
        "Product": {"name": "Product", "kind": "OBJECT", "fields": [], "inputFields": None, "enumValues": None},
    }
    introspection = {"__schema": {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"},
                                  "types": list(types.values())}}
    walk = SchemaWalk(introspection, {"Order": "O", "Product": "P1"})
    slots = list(walk.slots())
    assert [(s.path, s.scalar, s.is_list) for s in slots] == [
        (("input", "productId"), "ID", False), (("input", "tags"), "String", True)
    ]
    document, variables = walk.request(slots[1], "v")
    assert variables == {"input": {"productId": "P1", "tags": ["v"]}}
    assert document == "mutation Hostile($input: In!) { result: doIt(input: $input) { __typename errors { code field } } }"
    assert guess_kind("userIds", {"User": {}}) == "User" and guess_kind("ids", {}) == "Order"
