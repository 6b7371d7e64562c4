"""Generated operations against the running server (issue 10): queries and mutations drawn
from the committed schema by hypothesis-graphql, sent anonymously and signed in as a buyer
with a wallet and an order, a merchant with a shop and a product, and an ADMIN. No response
may be an HTTP 5xx or carry an error coded INTERNAL_SERVER_ERROR (what MaskUnexpectedErrors
makes of anything unexpected, schema/extensions.py).

Bounded, with a fixed seed per role, so a CI run is stable and takes a minute or two; the number of
cases sent is printed (run with -s to see it)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes
from strawberry.relay import GlobalID

from models.accounts.users import Role, User
from models.community.posts import Post, PostKind
from resolvers.accounts.auth import Actor
from resolvers.commerce import orders, payments
from tests.conftest import Client
from tests.factories import fund, make_merchant, make_product, make_user, token_for

SCHEMA = (Path(__file__).resolve().parent.parent / "schema.graphql").read_text()
EXAMPLES_PER_ROLE = 300
ROLES = ("anonymous", "buyer", "merchant", "admin")


def gid(kind: str, pk: int) -> str:
    return str(GlobalID(kind, str(pk)))


def scalars(ids: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """Values for the custom scalars, and IDs that are mostly real (so operations get past
    "no such thing" into the use cases) with hostile ones mixed in."""
    hostile_ids = [gid("Order", 2**64), gid("Order", 0), str(GlobalID("Order", "1.5")), str(GlobalID("Order", "")),
                   str(GlobalID("Nope", "1"))]
    decimals = st.one_of(
        st.decimals(min_value=-10**6, max_value=10**6, places=2, allow_nan=False, allow_infinity=False).map(str),
        st.sampled_from(["0", "0.01", "1e30", "NaN", "9" * 31, "\u0661\u0662", "-0.00", "1.234"]),
    )
    return {
        "ID": st.one_of(st.sampled_from(ids), st.sampled_from(hostile_ids), st.text(max_size=30)).map(nodes.String),
        "Decimal": decimals.map(nodes.String),
        "DateTime": st.one_of(
            st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
            st.text(max_size=30),
        ).map(nodes.String),
        "Date": st.one_of(st.dates().map(lambda d: d.isoformat()), st.text(max_size=12)).map(nodes.String),
        "JSON": st.one_of(st.just(nodes.Object([])), st.integers().map(nodes.Int), st.text(max_size=20).map(nodes.String)),
    }


def internal(body: Any) -> list[dict[str, Any]]:
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors or [] if (e.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"]


def signed_out(body: Any) -> bool:
    codes = [(e.get("extensions") or {}).get("code") for e in (body.get("errors") or [])] if isinstance(body, dict) else []
    payloads = [v for v in ((body.get("data") or {}) if isinstance(body, dict) else {}).values() if isinstance(v, dict)]
    codes += [e.get("code") for p in payloads for e in (p.get("errors") or []) if isinstance(e, dict)]
    return "UNAUTHENTICATED" in codes


async def world() -> tuple[dict[str, User | None], list[str]]:
    """The signed-in roles and the IDs of what they own."""
    admin = await make_user(Role.ADMIN, "Admin")
    seller = await make_user(Role.MERCHANT, "Seller")
    shop = await make_merchant(seller)
    product = await make_product(shop, keys=50)
    buyer = await make_user(Role.BUYER, "Buyer")
    await fund(buyer, "500.00")
    order = await orders.create_order(Actor(user=buyer), orders.NewOrder(product_id=product.id, quantity=1,
                                                                         idempotency_key="fuzz-order-0001"))
    await payments.pay_order(Actor(user=buyer), order.id, payments.PaymentMethod.WALLET)
    post = await Post.create(author=buyer, kind=PostKind.GUIDE, title="Guide", body="Body", body_html="<p>Body</p>",
                             product_id=product.id)
    ids = [gid("User", u.id) for u in (admin, seller, buyer)] + [
        gid("Merchant", shop.id), gid("Product", product.id), gid("Order", order.id), gid("Post", post.id),
    ]
    return {"anonymous": None, "buyer": buyer, "merchant": seller, "admin": admin}, ids


async def test_generated_operations_never_reach_an_internal_error(make_client) -> None:  # type: ignore[no-untyped-def]
    users, ids = await world()
    loop = asyncio.get_running_loop()
    strategy = from_schema(SCHEMA, custom_scalars=scalars(ids))
    sent: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    failures: list[str] = []

    def on_loop(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    def fuzz(role: str) -> None:
        client: Client = make_client()
        user = users[role]
        if user is not None:
            client.token = on_loop(token_for(user))

        # A fixed seed per role: stable in CI, and each role gets operations of its own.
        @seed(ROLES.index(role) + 2026)
        @settings(max_examples=EXAMPLES_PER_ROLE, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(document=strategy)
        def check(document: str) -> None:
            response = on_loop(client.post(document))
            sent[role] = sent.get(role, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{role}: HTTP {response.status_code} for {document[:300]}")
                return
            body = response.json()
            executed = isinstance(body, dict) and body.get("data") is not None
            outcomes[f"{role}:{'executed' if executed else 'refused'}"] = outcomes.get(
                f"{role}:{'executed' if executed else 'refused'}", 0) + 1
            for error in body.get("errors") or [] if isinstance(body, dict) else []:
                code = (error.get("extensions") or {}).get("code", "-")
                outcomes[code] = outcomes.get(code, 0) + 1
            if internal(body):
                failures.append(f"{role}: {json.dumps(internal(body))[:300]} for {document[:500]}")
            if user is not None and ("logout" in document or signed_out(body)):
                # A generated logout (everywhere: true) ends every session: sign in again, so
                # the next operations run signed in.
                client.token = on_loop(token_for(user))

        check()

    for role in ROLES:
        await asyncio.to_thread(fuzz, role)
    print(f"fuzz: {sum(sent.values())} generated operations sent: {sent}; outcomes: {outcomes}")
    assert all(sent.get(role, 0) >= EXAMPLES_PER_ROLE // 2 for role in ROLES), sent
    assert not failures, "\n".join(failures[:20])


def test_the_strategies_cover_every_custom_scalar() -> None:
    """hypothesis-graphql refuses a schema with a scalar it has no strategy for: the fuzz test
    would fail to build rather than skip an argument silently."""
    custom = {line.split()[1] for line in SCHEMA.splitlines() if line.startswith("scalar ")}
    assert custom and custom <= set(scalars([gid("Order", 1)])), sorted(custom)
