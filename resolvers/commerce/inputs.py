"""Input values shared by the catalogue's use cases: text as it is stored, amounts of money
as decimal strings, bounded numbers. Each refusal is an INVALID_INPUT naming its field."""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from resolvers.commerce.ledger import CENT
from resolvers.decimals import DecimalTextError, strict_decimal
from resolvers.errors import invalid

PRICE_MAX = Decimal("9999999999.99")  # NUMERIC(12,2)


def clean_text(value: str, field: str, *, minimum: int, maximum: int, multiline: bool = False) -> str:
    """NFC, trimmed, within length, no control characters (newlines and tabs if multiline)."""
    text = unicodedata.normalize("NFC", value).strip()
    if not minimum <= len(text) <= maximum:
        raise invalid(field, f"Give {minimum} to {maximum} characters." if minimum else f"At most {maximum} characters.")
    allowed_controls = "\n\t" if multiline else ""
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed_controls for ch in text):
        raise invalid(field, "Control characters are not allowed.")
    return text


def parse_amount(raw: str, field: str, *, allow_zero: bool = False) -> Decimal:
    """A decimal string such as "9.90": finite, positive (or zero), at most two decimals.

    Strict: ASCII digits only (``Decimal`` also takes "١٢", exponents and "NaN"), and the
    magnitude is checked before quantizing, which fails on huge values ("1e30").
    """
    try:
        # 20 digits either side: enough to say "too large" or "two decimals" below, where a
        # shorter limit would only say "not an amount".
        amount = strict_decimal(raw, integer_digits=20, places=20)
    except DecimalTextError:
        raise invalid(field, "Give an amount such as 9.90.") from None
    if amount < 0 or (amount == 0 and not allow_zero):
        raise invalid(field, "The amount must be positive." if not allow_zero else "The amount must not be negative.")
    if amount > PRICE_MAX:
        raise invalid(field, f"The amount must not exceed {PRICE_MAX}.")
    if amount != amount.quantize(CENT):
        raise invalid(field, "Amounts have at most two decimals.")
    return amount.quantize(CENT)


def bounded_int(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise invalid(field, f"{field} must be between {low} and {high}.")
    return value
