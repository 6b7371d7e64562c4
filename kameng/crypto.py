"""Card-key secrets at rest: AES-GCM with a key id, and HMAC fingerprints for dedupe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kameng.settings import Settings, get_settings

_NONCE = 12


@dataclass(frozen=True)
class Sealed:
    key_id: str
    ciphertext: str  # base64(nonce || ciphertext+tag)


class SecretBox:
    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        self.active, ring = settings.card_keyring()
        self._ciphers = {kid: AESGCM(key) for kid, key in ring.items()}
        self._fingerprint_key = settings.fingerprint_secret()

    def seal(self, secret: str, *, product_id: int) -> Sealed:
        nonce = os.urandom(_NONCE)
        # The product id is bound as associated data: a ciphertext moved to another product
        # does not decrypt.
        data = self._ciphers[self.active].encrypt(nonce, secret.encode(), str(product_id).encode())
        return Sealed(self.active, base64.b64encode(nonce + data).decode())

    def open(self, key_id: str, ciphertext: str, *, product_id: int) -> str:
        raw = base64.b64decode(ciphertext)
        return self._ciphers[key_id].decrypt(raw[:_NONCE], raw[_NONCE:], str(product_id).encode()).decode()

    def fingerprint(self, secret: str, *, product_id: int) -> str:
        message = f"{product_id}\x00{secret}".encode()
        return hmac.new(self._fingerprint_key, message, hashlib.sha256).hexdigest()


_box: SecretBox | None = None


def box() -> SecretBox:
    global _box
    if _box is None:
        _box = SecretBox()
    return _box


def reset() -> None:
    """Forget the cached keys (settings changed: tests, rotation)."""
    global _box
    _box = None


def seal_text(secret: str, context: str) -> Sealed:
    """Seal a secret that is not a card key (a supplier's secret), bound to ``context`` as
    associated data: moved to another context, it does not decrypt."""
    sealer = box()
    nonce = os.urandom(_NONCE)
    data = sealer._ciphers[sealer.active].encrypt(nonce, secret.encode(), b"ctx:" + context.encode())
    return Sealed(sealer.active, base64.b64encode(nonce + data).decode())


def open_text(key_id: str, ciphertext: str, context: str) -> str:
    raw = base64.b64decode(ciphertext)
    return box()._ciphers[key_id].decrypt(raw[:_NONCE], raw[_NONCE:], b"ctx:" + context.encode()).decode()
