from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.statements import Select


class Role(StrEnum):
    BUYER = "BUYER"
    MERCHANT = "MERCHANT"
    MODERATOR = "MODERATOR"
    ADMIN = "ADMIN"


class Tier(StrEnum):
    NORMAL = "NORMAL"
    SILVER = "SILVER"
    GOLD = "GOLD"


#: Roles that may act on other users' things (moderation, support, corrections).
STAFF_ROLES = frozenset({Role.MODERATOR, Role.ADMIN})


class User(Model):
    id = fields.BigIntField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)  # normalised, lower-case
    nickname = fields.CharField(max_length=40)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=16, default=Role.BUYER)
    tier = fields.CharEnumField(Tier, max_length=16, default=Tier.NORMAL)
    is_active = fields.BooleanField(default=True)
    follower_count = fields.IntField(default=0)
    # Feeds are fanned out only to recently active users (refreshed at most hourly).
    last_active_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Off: behaviour events are stored without user or device (anonymous aggregates only).
    personalisation = fields.BooleanField(default=True)
    # Off: no marketing messages (campaigns and their offers). Service messages -- orders,
    # payments, renewals, replies -- are not marketing and still go.
    marketing = fields.BooleanField(default=True)

    class Meta:
        table = "user"

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


class AuthSession(Model):
    """One signed-in device: its refresh token rotates on every use.

    The refresh token handed out is ``<session id>.<secret>``; only the SHA-256 of the current
    secret is stored. Presenting an older secret means the token was copied: the whole session
    is revoked (and with it every access token that names it).
    """

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "kameng.User", related_name="sessions", on_delete=fields.CASCADE
    )
    refresh_hash = fields.CharField(max_length=64)
    generation = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    user_agent = fields.CharField(max_length=255, default="")
    ip = fields.CharField(max_length=64, default="")

    class Meta:
        table = "auth_session"


#: A user read afresh by id (pricing reads the tier as it is now), a fixed statement.
USER_BY_ID = Select(User, "id", limit=1)
