"""Scalars the schema parses more strictly than Strawberry's defaults (same GraphQL names, so
the contract keeps its shape).

``Decimal``: Strawberry's takes whatever ``decimal.Decimal()`` takes: "١٢", "1e999999",
"NaN", 31 nines. Ours takes ASCII-digit decimals of bounded size only (resolvers/decimals.py)
and refuses the rest before any resolver runs, as a request error coded INVALID_INPUT that
names the offending value.
"""

from __future__ import annotations

import decimal

from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition

from resolvers.decimals import DecimalTextError, strict_decimal
from resolvers.errors import ErrorCode


def _parse_decimal(value: object) -> decimal.Decimal:
    try:
        return strict_decimal(value)
    except DecimalTextError as error:
        shown = value if isinstance(value, str) and len(value) <= 40 else f"{str(value)[:40]}..."
        raise StrawberryInputCoercionError(
            f'Value cannot represent a Decimal: "{shown}". {error}',
            extensions={"code": ErrorCode.INVALID_INPUT.value},
        ) from None


StrictDecimal = ScalarDefinition(
    name="Decimal",
    description="Decimal (fixed-point)",
    specified_by_url=None,
    serialize=str,
    parse_value=_parse_decimal,
    parse_literal=None,
    origin=decimal.Decimal,
)

#: ``strawberry.Schema(scalar_overrides=...)``.
SCALAR_OVERRIDES = {decimal.Decimal: StrictDecimal}
