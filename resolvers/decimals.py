"""Strict decimal text: the one parser for every decimal a client sends (amounts, prices,
filters, cursors, the GraphQL ``Decimal`` scalar).

``Decimal()`` itself takes "١٢" (any Unicode digit), exponents ("1e999999", whose quantize
fails later), "NaN" and "Infinity", and 31 nines that no NUMERIC(12,2) column holds; each
used to reach an internal error or, worse, be accepted as money. Here a decimal is ASCII
digits, an optional minus, a bounded number of integer digits and decimals, nothing else.
"""

from __future__ import annotations

import re
from decimal import Decimal

#: NUMERIC(12,2) holds 10 integer digits; 12 leaves room for sums and is still far from
#: anything ``quantize`` cannot do (28 digits of context precision).
INTEGER_DIGITS = 12
PLACES = 2


class DecimalTextError(ValueError):
    """Not a strict decimal; the message says what is expected."""


def strict_decimal(value: object, *, integer_digits: int = INTEGER_DIGITS, places: int = PLACES) -> Decimal:
    """``value`` (a str, or an int) as a Decimal, or DecimalTextError."""
    if isinstance(value, bool):
        raise DecimalTextError("Give a decimal such as \"9.90\".")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise DecimalTextError("Give a decimal as a string, such as \"9.90\".")
    text = value.strip()
    pattern = rf"-?[0-9]{{1,{integer_digits}}}(?:\.[0-9]{{1,{places}}})?" if places else rf"-?[0-9]{{1,{integer_digits}}}"
    if re.fullmatch(pattern, text, flags=re.ASCII) is None:
        if re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?", text, flags=re.ASCII) is not None:
            raise DecimalTextError(
                f"Give at most {integer_digits} digits before the point and {places} after it."
            )
        raise DecimalTextError("Give a decimal of ASCII digits such as \"9.90\" (no exponent, NaN or Infinity).")
    return Decimal(text)
