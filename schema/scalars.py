"""Scalars the schema parses more strictly than Strawberry's defaults (same GraphQL names, so
the contract keeps its shape).

``Decimal``: Strawberry's takes whatever ``decimal.Decimal()`` takes: "١٢", "1e999999",
"NaN", 31 nines. Ours takes ASCII-digit decimals of bounded size only (resolvers/decimals.py)
and refuses the rest before any resolver runs, as a request error coded INVALID_INPUT that
names the offending value.

``DateTime``: the same values as Strawberry's (dateutil's ``isoparse``), but tried first with
the C ``datetime.fromisoformat``: dateutil costs ~45 µs a value, 60 % of coercing a 500-event
``track`` batch (bench/README.md); anything ``fromisoformat`` refuses still goes to dateutil,
with Strawberry's own error message.
"""

from __future__ import annotations

import datetime
import decimal

from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import DateTimeDefinition
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

_parse_datetime_slowly = DateTimeDefinition.parse_value


def _parse_datetime(value: object) -> object:
    if type(value) is str:
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
    return _parse_datetime_slowly(value)  # type: ignore[misc]


FastDateTime = ScalarDefinition(
    name="DateTime",
    description=DateTimeDefinition.description,
    specified_by_url=None,
    serialize=DateTimeDefinition.serialize,
    parse_value=_parse_datetime,
    parse_literal=None,
    origin=datetime.datetime,
)

#: ``strawberry.Schema(scalar_overrides=...)``.
SCALAR_OVERRIDES = {decimal.Decimal: StrictDecimal, datetime.datetime: FastDateTime}
