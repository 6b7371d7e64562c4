"""Top-up suppliers: where a shop's DIRECT_TOPUP products are topped up, and the one HTTP
client that calls them.

A shop configures its supplier (endpoint, secret, timeout) for the whole shop or for one
product; a product's own configuration wins, then the shop's, then the legacy
``Merchant.supplier_url`` (no secret). The secret is sealed with the card-key keyring
(AES-GCM, bound to the shop and scope: ``kameng.crypto.seal_text``) and is never returned:
the graph shows only whether one is set and its last four characters.

Endpoints must resolve to public addresses (``KAMENG_SUPPLIER_ALLOW_PRIVATE`` lifts it, for a
supplier on the platform's own network): checked when a shop configures one and again before
every call, as DNS may change in between; redirects are not followed. A call connects to the
very addresses it checked, not to the host name: the URL's host is replaced by the checked
address, the ``Host`` header and TLS's server name (SNI and certificate check, httpcore's
``sni_hostname`` extension) keep the name. A second DNS answer, which a rebinding host would
point at an internal address, is never asked for.

Each call is a JSON POST signed with the secret: ``X-Kameng-Timestamp`` (unix seconds) and
``X-Kameng-Signature`` = hex HMAC-SHA256 of ``"<timestamp>.<body>"``; the order number is
the ``Idempotency-Key``, so a retried call after a lost answer does not top up twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from kameng import crypto, runtime
from kameng.settings import get_settings
from models.commerce.catalog import DeliveryKind, Product
from models.commerce.merchants import Merchant
from models.commerce.suppliers import SupplierConfig
from resolvers.accounts import permissions
from resolvers.accounts.auth import Actor
from resolvers.accounts.permissions import Action
from resolvers.commerce.merchants import find_merchant
from resolvers.errors import ErrorCode, UserFacingError, invalid

SECRET_MIN, SECRET_MAX = 8, 200
TIMEOUT_MIN = 0.5
SHOP_SCOPE = "shop"


class SupplierRefused(Exception):
    """The supplier answered that this top-up cannot be done: no point retrying."""


class SupplierUnavailable(Exception):
    """Timeout, connection error or 5xx: the job raises it to be retried with backoff."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    secret: str | None
    timeout: float


def _scope(product_id: int | None) -> str:
    return SHOP_SCOPE if product_id is None else f"product:{product_id}"


def _context(merchant_id: int, scope: str) -> str:
    return f"supplier:{merchant_id}:{scope}"


def _target(config: SupplierConfig) -> Target:
    secret = None
    if config.secret_ciphertext:
        secret = crypto.open_text(config.secret_key_id, config.secret_ciphertext,
                                  _context(config.merchant_id, config.scope))
    return Target(config.endpoint, secret, config.timeout_seconds)


async def target_for(product: Product) -> Target:
    """The supplier a product's top-ups go to: its own, its shop's, or the legacy URL."""
    configs = {c.scope: c for c in await SupplierConfig.filter(
        merchant_id=product.merchant_id, scope__in=[_scope(product.id), SHOP_SCOPE])}
    config = configs.get(_scope(product.id)) or configs.get(SHOP_SCOPE)
    if config is not None:
        return _target(config)
    url = await Merchant.filter(id=product.merchant_id).values_list("supplier_url", flat=True)
    return Target(url[0] if url else "", None, get_settings().supplier_timeout_seconds)


def _signed(target: Target, body: dict[str, Any], idempotency_key: str | None) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if target.secret:
        stamp = str(int(time.time()))
        headers["X-Kameng-Timestamp"] = stamp
        headers["X-Kameng-Signature"] = hmac.new(
            target.secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return raw, headers


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# A host may resolve to many addresses; a call tries this many of them before giving up.
MAX_ADDRESSES = 3
# The TLS verification of supplier calls (httpx's ``verify``); tests trust their own CA here.
VERIFY: ssl.SSLContext | bool = True


def _public(address: Address) -> bool:
    return address.is_global


async def _resolve(url: str) -> list[Address]:
    """Every address ``url``'s host resolves to, in the resolver's order, without repeats.
    ValueError if the URL names no valid host and port; OSError if the host does not resolve."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)  # ValueError (UnicodeError too)
    found = await asyncio.get_running_loop().getaddrinfo(parts.hostname or "", port, type=socket.SOCK_STREAM)
    addresses = (ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]) for *_, sockaddr in found)
    return list(dict.fromkeys(addresses))


def _refusal(url: str, addresses: list[Address]) -> str | None:
    """Why a host with these addresses may not be called (one of them is loopback, private,
    link-local or otherwise not global), or None."""
    for address in addresses:
        if not _public(address):
            return f"the host {urlsplit(url).hostname!r} is not a public address ({address})"
    return None


async def not_public(url: str) -> str | None:
    """Why ``url`` may not be configured as a supplier (a host that does not resolve is refused
    too), or None."""
    if get_settings().supplier_allow_private:
        return None
    try:
        return _refusal(url, await _resolve(url))
    except ValueError:
        return f"the URL {url!r} names no valid host and port"
    except OSError:
        return f"the host {urlsplit(url).hostname!r} does not resolve"


async def _checked_addresses(url: str) -> list[Address] | None:
    """The addresses a call to ``url`` may connect to, checked; None when private addresses are
    allowed (the call then connects by name)."""
    if get_settings().supplier_allow_private:
        return None
    try:
        addresses = await _resolve(url)
    except ValueError:
        raise SupplierRefused(f"the URL {url!r} names no valid host and port") from None
    except OSError as exc:  # DNS down for now: retried like a connection error
        raise SupplierUnavailable(f"the supplier's host does not resolve ({exc})") from None
    if (why := _refusal(url, addresses)) is not None:
        raise SupplierRefused(why)
    return addresses[:MAX_ADDRESSES]


async def _send(client: httpx.AsyncClient, url: str, addresses: list[Address] | None,
                raw: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST to the checked addresses in turn until one connects (by name when None)."""
    if addresses is None:
        return await client.post(url, content=raw, headers=headers)
    named = httpx.URL(url)
    pinned = {**headers, "Host": named.netloc.decode("ascii")}
    server_name = {"sni_hostname": named.raw_host.decode("ascii")}
    for tried, address in enumerate(addresses, 1):
        try:
            return await client.post(named.copy_with(host=str(address)), content=raw, headers=pinned,
                                     extensions=server_name)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if tried == len(addresses):
                raise
    raise SupplierUnavailable("the supplier's host has no address")


async def post(target: Target, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
    """One signed call; the supplier's JSON answer with ``"status": "ok"``, or an exception."""
    if not target.url:
        raise SupplierRefused("the merchant has no supplier configured")
    addresses = await _checked_addresses(target.url)
    raw, headers = _signed(target, body, idempotency_key)
    try:
        async with httpx.AsyncClient(timeout=target.timeout, verify=VERIFY) as client:
            response = await _send(client, target.url, addresses, raw, headers)
    except httpx.HTTPError as exc:
        raise SupplierUnavailable(f"{type(exc).__name__}: {exc}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise SupplierUnavailable(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise SupplierRefused(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        data: Any = response.json()
    except ValueError:
        raise SupplierUnavailable("the supplier's answer is not JSON") from None
    if not isinstance(data, dict) or data.get("status") != "ok":
        raise SupplierRefused(str(data)[:200])
    return data


# -- configuration (the shop's owner) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SupplierSpec:
    merchant_id: int
    endpoint: str
    product_id: int | None = None
    secret: str | None = None  # None keeps the stored one; "" removes it
    timeout_seconds: float | None = None


def _endpoint(raw: str) -> str:
    url = raw.strip()
    parts = urlsplit(url)
    if len(url) > 500 or parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("endpoint", "Give the supplier's http(s) URL (at most 500 characters).")
    return url


async def _product_of(merchant: Merchant, product_id: int | None) -> None:
    if product_id is None:
        return
    kind = await Product.filter(id=product_id, merchant_id=merchant.id).values_list("delivery_kind", flat=True)
    if not kind:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product in this shop.", "productId")
    if kind[0] != DeliveryKind.DIRECT_TOPUP:
        raise invalid("productId", "Only DIRECT_TOPUP products call a supplier.")


async def configure(actor: Actor, spec: SupplierSpec) -> SupplierConfig:
    shop = await find_merchant(spec.merchant_id)
    permissions.require(actor, Action.CONFIGURE_SUPPLIER, owner_id=shop.owner_id)
    await _product_of(shop, spec.product_id)
    endpoint = _endpoint(spec.endpoint)
    if (why := await not_public(endpoint)) is not None:
        raise invalid("endpoint", f"The supplier must be reachable at a public address: {why}.")
    ceiling = get_settings().supplier_timeout_max_seconds
    timeout = spec.timeout_seconds if spec.timeout_seconds is not None else get_settings().supplier_timeout_seconds
    if not TIMEOUT_MIN <= timeout <= ceiling:
        raise invalid("timeoutSeconds", f"A timeout is {TIMEOUT_MIN} to {ceiling} seconds.")
    scope = _scope(spec.product_id)
    values: dict[str, Any] = {"endpoint": endpoint, "timeout_seconds": float(timeout), "product_id": spec.product_id}
    if spec.secret is not None:
        secret = spec.secret.strip()
        if secret and not SECRET_MIN <= len(secret) <= SECRET_MAX:
            raise invalid("secret", f"A secret has {SECRET_MIN} to {SECRET_MAX} characters (or none).")
        sealed = crypto.seal_text(secret, _context(shop.id, scope)) if secret else None
        values.update(secret_key_id=sealed.key_id if sealed else "", secret_ciphertext=sealed.ciphertext if sealed else "",
                      secret_hint=secret[-4:] if secret else "")
    config, _ = await SupplierConfig.update_or_create(values, merchant_id=shop.id, scope=scope)
    return config


async def configs_of(actor: Actor, merchant: Merchant) -> list[SupplierConfig] | None:
    """A shop's supplier configurations (secrets never included): owner and staff."""
    if not permissions.allowed(actor, Action.READ_SHOP_PRIVATE, owner_id=merchant.owner_id):
        return None
    return list(await SupplierConfig.filter(merchant_id=merchant.id).order_by("id"))


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    ok: bool
    message: str
    milliseconds: int


async def test_connection(actor: Actor, merchant_id: int, product_id: int | None) -> ConnectionCheck:
    """Send the configured supplier a signed ``{"type": "ping"}`` and report what it said."""
    shop = await find_merchant(merchant_id)
    permissions.require(actor, Action.CONFIGURE_SUPPLIER, owner_id=shop.owner_id)
    await _product_of(shop, product_id)
    config = await SupplierConfig.filter(merchant_id=shop.id, scope=_scope(product_id)).first()
    if config is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "Configure the supplier first.", "productId" if product_id else
                              "merchantId")
    # Per shop, not per caller: the owner and staff test the same endpoint, and every test is
    # a request the platform sends out on the shop's say-so.
    if not await runtime.limiter().hit(get_settings().supplier_test_limit, "suppliers:test", str(shop.id)):
        raise UserFacingError(ErrorCode.RATE_LIMITED, "Too many connection tests for this shop; wait a minute.")
    started = time.perf_counter()
    try:
        await post(_target(config), {"type": "ping", "merchant": str(shop.id)})
        ok, message = True, "The supplier answered ok."
    except (SupplierRefused, SupplierUnavailable) as exc:
        ok, message = False, str(exc)[:200]
    return ConnectionCheck(ok, message, int((time.perf_counter() - started) * 1000))
