"""Feature flags and A/B experiments, and who was exposed to which arm.

An experiment's arms are a JSON list of ``{"name", "weight"}``; a feature flag is an
experiment whose arms are ``off`` and ``on`` (the weight of ``on`` is the rollout). An exposure
is written once per unit (a user, or a device before sign-in) and experiment: it is what
makes assignment sticky once weights change, and what the results count.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class ExperimentKind(StrEnum):
    FLAG = "FLAG"
    EXPERIMENT = "EXPERIMENT"


class Experiment(Model):
    """A flag or an experiment, by its stable key (the hash seed)."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=64, unique=True)
    kind = fields.CharEnumField(ExperimentKind, max_length=16, default=ExperimentKind.EXPERIMENT)
    description = fields.CharField(max_length=300, default="")
    arms = fields.JSONField(default=list)
    enabled = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "experiment"


class ExperimentExposure(Model):
    """The first time a unit saw an arm. ``unit`` is ``user:<id>`` or ``device:<id>``, and a
    device exposure gets its ``user_id`` when that device signs in."""

    id = fields.BigIntField(primary_key=True)
    experiment: fields.ForeignKeyRelation[Experiment] = fields.ForeignKeyField(
        "kameng.Experiment", related_name="exposures", on_delete=fields.CASCADE
    )
    unit = fields.CharField(max_length=80)
    user_id = fields.BigIntField(null=True, db_index=True)
    device_id = fields.CharField(max_length=64, null=True)
    arm = fields.CharField(max_length=32)
    exposed_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "experiment_exposure"
        unique_together = (("experiment", "unit"),)
