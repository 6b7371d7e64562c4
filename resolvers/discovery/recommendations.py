"""Serving recommendations: surfaces, reasons, attribution tokens.

A request reads precomputed lists (resolvers/discovery/training.py writes them) and costs at
most two SQL queries: the lists (none when Redis holds them all) and one product query that
re-checks availability (resolvers/discovery/catalogue.py) and brings best sellers along as the
last-resort filler, so the answer is never empty while anything is on sale.

Each item carries a signed attribution token (surface, model version, product, user or device,
time) that clients send back with RECOMMENDATION_IMPRESSION and RECOMMENDATION_CLICK events;
resolvers/discovery/measurement.py turns those and the orders that follow into CTR, conversion
and GMV share.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from enum import StrEnum

import orjson

from kameng.settings import get_settings
from models.commerce.catalog import Product
from resolvers.accounts.auth import Actor
from resolvers.discovery import catalogue, storage
from resolvers.discovery.reasons import Reason, ReasonKind
from resolvers.errors import invalid
from resolvers.lifecycle import exposures

MAX_FIRST = 50
POPULARITY = "popularity"
EXPERIMENT = "recommendations"


class Surface(StrEnum):
    HOME = "HOME"
    PRODUCT = "PRODUCT"
    POST = "POST"
    AFTER_PURCHASE = "AFTER_PURCHASE"
    CIRCLE = "CIRCLE"


@dataclass(frozen=True)
class Recommended:
    product: Product
    reason_kind: ReasonKind
    reason_text: str
    reason_ref: int | None
    score: float
    token: str


@dataclass(frozen=True)
class Recommendations:
    items: list[Recommended]
    post_ids: list[int]
    model_version: str


# -- the one place where the serving path picks a model -----------------------------------


async def choose_arm(actor: Actor, device_id: str | None, surface: Surface) -> str:
    """Which model answers this caller: "model" (the trained EASE lists) or ``POPULARITY`` (the
    trending list for everyone), by the experiment ``recommendations``
    (resolvers/lifecycle/experiments.py, arms ``popularity`` and ``model``) on every surface.

    Served by ``resolvers.lifecycle.exposures.arm``: no SQL per request (a cached definition,
    the hash or the arm this process remembers; the exposure is written in batches off the
    request path). A caller with neither a user nor a device (``Product.similar``, an anonymous
    request without ``deviceId``) is not in the experiment and gets the model, unlogged. The
    token records the arm (the model version ``popularity``), so the stats split by it."""
    chosen = await exposures.arm(EXPERIMENT, actor.user_id, device_id)
    return POPULARITY if chosen == POPULARITY else "model"


# -- attribution tokens --------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    surface: str
    model_version: str
    product_id: int
    user_id: int | None
    device: str | None  # a short hash of the device id, never the id itself
    issued_at: int


def _token_key() -> bytes:
    return hashlib.sha256(b"kameng:recommendation-token:" + get_settings().signing_secret().encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def device_hash(device_id: str | None) -> str | None:
    return hashlib.sha256(device_id.encode()).hexdigest()[:10] if device_id else None


def issue_token(claims: TokenClaims, key: bytes | None = None) -> str:
    payload = orjson.dumps([claims.surface, claims.model_version, claims.product_id, claims.user_id, claims.device,
                            claims.issued_at])
    signature = hmac.new(key or _token_key(), payload, hashlib.sha256).digest()[:12]
    return f"{_b64(payload)}.{_b64(signature)}"


def read_token(token: str | None, key: bytes | None = None) -> TokenClaims | None:
    """The claims of a token we signed, or None (forged, altered or not ours)."""
    if not token or token.count(".") != 1:
        return None
    body, signature = token.split(".")
    try:
        payload = _unb64(body)
        expected = hmac.new(key or _token_key(), payload, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        surface, version, product, user, device, issued = orjson.loads(payload)
        return TokenClaims(str(surface), str(version), int(product), None if user is None else int(user),
                           None if device is None else str(device), int(issued))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None


# -- serving ---------------------------------------------------------------------------------


def _primary(surface: Surface, actor: Actor, device_id: str | None, product_id: int | None,
             post_id: int | None) -> str | None:
    if surface == Surface.HOME:
        if actor.user_id is not None:
            return f"u:{actor.user_id}"
        return f"d:{device_id}" if device_id else None
    if surface == Surface.POST:
        if post_id is None:
            raise invalid("postId", "The POST surface needs a postId.")
        return f"post:{post_id}"
    if product_id is None:
        raise invalid("productId", f"The {surface.value} surface needs a productId.")
    return f"c:{product_id}" if surface == Surface.CIRCLE else f"p:{product_id}"


async def recommend(actor: Actor, surface: Surface, *, product_id: int | None = None, post_id: int | None = None,
                    device_id: str | None = None, first: int = 10) -> Recommendations:
    if not 1 <= first <= MAX_FIRST:
        raise invalid("first", f"Ask for 1 to {MAX_FIRST} recommendations.")
    if device_id is not None and not 1 <= len(device_id) <= 64:
        raise invalid("deviceId", "A device id has 1 to 64 characters.")
    arm = await choose_arm(actor, device_id, surface)
    primary = _primary(surface, actor, device_id, product_id, post_id)
    if arm == POPULARITY:
        primary = "trending"
    owners = [o for o in dict.fromkeys([primary, "trending", "new"]) if o is not None]
    found = await storage.fetch(owners)
    candidates: list[list[object]] = []
    seen: set[int] = {product_id} if product_id is not None and surface != Surface.POST else set()
    for owner in owners:
        for row in found.get(owner, ("", [], []))[1]:
            pid = int(row[0])  # type: ignore[call-overload]
            if pid not in seen:
                seen.add(pid)
                candidates.append(row)
    # Enough spares for products gone since training (the query re-checks them), few to load.
    budget = candidates[: first + max(5, first // 2)]
    # Best sellers fill what the lists cannot: a few always (so the answer is never empty), all
    # of it when the lists are short.
    fill = max(3, first + 2 - len(budget))
    products = await catalogue.available_products([int(r[0]) for r in budget], actor.user_id,  # type: ignore[call-overload]
                                                  fill=fill, exclude=product_id)
    trained = next((found[o][0] for o in owners if o in found), "")
    version = POPULARITY if arm == POPULARITY else (trained or "cold-start")
    issued, device = int(time.time()), device_hash(device_id)
    key = _token_key()

    def item(product: Product, row: list[object]) -> Recommended:
        claims = TokenClaims(surface.value, version, product.id, actor.user_id, device, issued)
        return Recommended(product, ReasonKind(str(row[2])), str(row[3]),
                           None if row[4] is None else int(row[4]),  # type: ignore[call-overload]
                           float(row[1]), issue_token(claims, key))  # type: ignore[arg-type]

    items: list[Recommended] = []
    for r in budget:
        if len(items) == first:
            break
        if int(r[0]) in products:  # type: ignore[call-overload]
            items.append(item(products.pop(int(r[0])), r))  # type: ignore[call-overload]
    if len(items) < first:  # best sellers, the filler of last resort
        filler = sorted(products.values(), key=lambda p: (-p.sold_count, -p.id))
        items += [item(p, [p.id, 0.0, *Reason.trending()]) for p in filler[: first - len(items)]]
    posts = found.get(primary, ("", [], []))[2] if primary and surface in (Surface.AFTER_PURCHASE, Surface.POST) else []
    return Recommendations(items, list(posts), version)


async def similar_products(product_id: int, first: int) -> list[Product]:
    """``Product.similar``: the product's precomputed neighbours that are on sale, else trending."""
    result = await recommend(Actor(), Surface.PRODUCT, product_id=product_id, first=first)
    return [r.product for r in result.items]
