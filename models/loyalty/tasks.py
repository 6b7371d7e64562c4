from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class TaskPeriod(StrEnum):
    DAILY = "DAILY"
    ONCE = "ONCE"


class Task(Model):
    """A task of the task center: reach ``target`` occurrences of ``event`` in a period."""

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=40, unique=True)
    title = fields.CharField(max_length=80)
    period = fields.CharEnumField(TaskPeriod, max_length=8)
    event = fields.CharField(max_length=40)  # ORDER_COMPLETED, POST_CREATED, CHECK_IN, ...
    target = fields.IntField(default=1)
    reward_points = fields.IntField(default=0)
    reward_coupon_id = fields.BigIntField(null=True)
    active = fields.BooleanField(default=True)

    class Meta:
        table = "task"


class TaskProgress(Model):
    id = fields.BigIntField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "kameng.Task", related_name="progress", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "kameng.User", related_name="task_progress", on_delete=fields.CASCADE
    )
    period_key = fields.CharField(max_length=16)  # "2026-11-22" for DAILY, "once" for ONCE
    progress = fields.IntField(default=0)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "task_progress"
        unique_together = (("task_id", "user_id", "period_key"),)
