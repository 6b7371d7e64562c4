"""Payment providers: the plugin interface, and the built-in "kpay" gateway.

A provider does two things: it makes the link a buyer follows to pay (``create_payment``),
and it checks a callback (``verify``), returning what the callback proves or raising
``CallbackRefused``. Everything a callback may change (which payment, which order, how much,
under which provider transaction) must be inside what the provider signed.

kpay signs callbacks with HMAC-SHA256 over the canonical parameters: every parameter except
``sign``, sorted by name, written ``key=value`` and joined with ``&``. The signature is the
lower-case hex digest in ``sign``. Callbacks carry exactly these parameters::

    payment_id  our Payment id           order_no  the order number
    amount      "10.00" (two decimals)   currency  "CNY"
    txn_id      kpay's transaction id    status    "SUCCESS"

Pay links are signed the same way with a key derived from the secret (domain separation):
a signature a buyer can see on a pay link is never a valid callback signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from kameng.settings import Settings, get_settings

#: Shortest secret accepted: a shorter one is treated as not configured.
MIN_SECRET_LENGTH = 16
CALLBACK_FIELDS = frozenset({"payment_id", "order_no", "amount", "currency", "txn_id", "status"})
PAY_FIELDS = frozenset({"payment_id", "order_no", "amount", "currency", "notify_url"})
SUCCESS = "SUCCESS"

# Strict shapes: no value may contain "&" or "=", so the canonical string is unambiguous.
_SHAPES: dict[str, re.Pattern[str]] = {
    "payment_id": re.compile(r"[1-9][0-9]{0,17}"),
    "order_no": re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}"),
    "amount": re.compile(r"(?:0|[1-9][0-9]{0,9})\.[0-9]{2}"),
    "currency": re.compile(r"[A-Z]{3}"),
    "txn_id": re.compile(r"[A-Za-z0-9_.-]{1,64}"),
    "status": re.compile(r"[A-Z_]{1,20}"),
}
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class CallbackRefused(Exception):
    """A callback that must change nothing; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ProviderNotConfigured(CallbackRefused):
    """The provider has no usable secret: every callback is refused (never "no key, no check")."""

    def __init__(self, name: str) -> None:
        super().__init__(503, f"payment provider {name!r} is not configured")


@dataclass(frozen=True)
class VerifiedCallback:
    """What a correctly signed callback says."""

    provider: str
    payment_id: int
    order_no: str
    amount: Decimal
    currency: str
    txn_id: str
    status: str


class Provider(ABC):
    """A payment provider plugin."""

    name: str

    @abstractmethod
    def create_payment(self, order: Any, payment: Any, *, notify_url: str) -> str:
        """The URL the buyer follows to pay ``payment`` of ``order``.

        Raises ``ProviderNotConfigured`` if the provider cannot take payments."""

    @abstractmethod
    def verify(self, params: Mapping[str, str]) -> VerifiedCallback:
        """Check a callback; raise ``CallbackRefused`` unless it is authentic and well formed."""

    @property
    @abstractmethod
    def configured(self) -> bool:
        """True when the provider can take payments and verify callbacks."""


# -- signing -----------------------------------------------------------------------------


def canonical(params: Mapping[str, str]) -> str:
    """``key=value`` pairs sorted by key, joined with ``&``; ``sign`` left out."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key != "sign")


def sign_callback(params: Mapping[str, str], secret: str) -> str:
    return hmac.new(secret.encode(), canonical(params).encode(), hashlib.sha256).hexdigest()


def _pay_link_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"kpay pay-request v1", hashlib.sha256).digest()


def sign_pay_request(params: Mapping[str, str], secret: str) -> str:
    return hmac.new(_pay_link_key(secret), canonical(params).encode(), hashlib.sha256).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    """Constant-time comparison (bytes: ``compare_digest`` refuses non-ASCII str)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def usable_secret(value: str | None) -> str | None:
    return value if value and len(value) >= MIN_SECRET_LENGTH else None


# -- the built-in provider ---------------------------------------------------------------


class KPay(Provider):
    name = "kpay"

    def __init__(self, secret: str | None, base_url: str) -> None:
        self._secret = usable_secret(secret)
        self.base_url = base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> KPay:
        secret = settings.kpay_secret.get_secret_value() if settings.kpay_secret is not None else None
        return cls(secret, settings.kpay_url)

    @property
    def configured(self) -> bool:
        return self._secret is not None

    def _require_secret(self) -> str:
        if self._secret is None:
            raise ProviderNotConfigured(self.name)
        return self._secret

    def create_payment(self, order: Any, payment: Any, *, notify_url: str) -> str:
        secret = self._require_secret()
        params = {
            "payment_id": str(payment.id),
            "order_no": order.order_no,
            "amount": f"{Decimal(payment.amount):.2f}",
            "currency": payment.currency,
            "notify_url": notify_url,
        }
        params["sign"] = sign_pay_request(params, secret)
        return f"{self.base_url}/pay?{urlencode(params)}"

    def verify(self, params: Mapping[str, str]) -> VerifiedCallback:
        secret = self._require_secret()
        given = params.get("sign", "")
        if not _HEX_SIGNATURE.fullmatch(given):
            raise CallbackRefused(401, "missing or malformed signature")
        fields = {key: value for key, value in params.items() if key != "sign"}
        if set(fields) != CALLBACK_FIELDS:
            raise CallbackRefused(400, "unexpected or missing parameters")
        if not signature_matches(sign_callback(fields, secret), given):
            raise CallbackRefused(401, "bad signature")
        for key, shape in _SHAPES.items():
            if not shape.fullmatch(fields[key]):
                raise CallbackRefused(400, f"malformed {key}")
        if fields["status"] != SUCCESS:
            raise CallbackRefused(400, f"unsupported status {fields['status']}")
        return VerifiedCallback(
            provider=self.name,
            payment_id=int(fields["payment_id"]),
            order_no=fields["order_no"],
            amount=Decimal(fields["amount"]),
            currency=fields["currency"],
            txn_id=fields["txn_id"],
            status=fields["status"],
        )

    def verify_pay_request(self, params: Mapping[str, str]) -> dict[str, str]:
        """For the simulator: the pay link's parameters, if our signature on them holds."""
        secret = self._require_secret()
        fields = {key: value for key, value in params.items() if key != "sign"}
        if set(fields) != PAY_FIELDS or not signature_matches(sign_pay_request(fields, secret), params.get("sign", "")):
            raise CallbackRefused(400, "bad pay request")
        return fields


#: Provider plugins by name. A plugin is a factory from settings, so secrets are read when used.
PROVIDERS: dict[str, Callable[[Settings], Provider]] = {"kpay": KPay.from_settings}


def provider(name: str, settings: Settings | None = None) -> Provider:
    """The provider called ``name``; KeyError if there is none."""
    return PROVIDERS[name](settings or get_settings())
