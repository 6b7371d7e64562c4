"""The post-purchase survey (article 004): one per delivered order, asked some days after
delivery, answered once with a 0-10 score and a comment."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Survey(Model):
    """A satisfaction survey about one order. An unhappy answer (6 or less) opens an
    after-sales ticket (``ticket_id``) and may grant a compensation coupon (``user_coupon_id``)."""

    id = fields.BigIntField(primary_key=True)
    order_id = fields.BigIntField(unique=True)
    user_id = fields.BigIntField(db_index=True)
    asked_at = fields.DatetimeField()
    score = fields.SmallIntField(null=True)
    comment = fields.CharField(max_length=1000, default="")
    answered_at = fields.DatetimeField(null=True, db_index=True)
    ticket_id = fields.BigIntField(null=True)
    user_coupon_id = fields.BigIntField(null=True)

    class Meta:
        table = "survey"
