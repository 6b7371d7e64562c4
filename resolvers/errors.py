"""Expected failures: raised by use cases, returned to clients as UserErrors with a stable code."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    RATE_LIMITED = "RATE_LIMITED"
    SOLD_OUT = "SOLD_OUT"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    INVALID_STATE = "INVALID_STATE"
    COUPON_INVALID = "COUPON_INVALID"
    DUPLICATE = "DUPLICATE"


class UserFacingError(Exception):
    """An expected failure. The transaction it is raised in rolls back, so nothing changes."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"UserFacingError({self.code}, {self.message!r}, field={self.field!r})"


def invalid(field: str, message: str) -> UserFacingError:
    return UserFacingError(ErrorCode.INVALID_INPUT, message, field)
