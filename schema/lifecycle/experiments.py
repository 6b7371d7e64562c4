"""Feature flags and A/B experiments in the graph: assignments for clients, definitions and
results for staff."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry

from models.lifecycle.experiments import ExperimentKind as Kind
from resolvers.discovery import tracking
from resolvers.lifecycle import experiments
from schema.base import UserError, describe_values, errors_field, mutation
from schema.context import Info

ExperimentKind = describe_values(
    strawberry.enum(Kind, name="ExperimentKind", description="A feature flag or an A/B experiment."),
    FLAG="A feature flag: arms `off` and `on`, the weight of `on` is the rollout.",
    EXPERIMENT="An A/B experiment with named, weighted arms (the first is the control).",
)


KeyArg = Annotated[str, strawberry.argument(description="The flag's or experiment's key.")]
DeviceArg = Annotated[
    str | None, strawberry.argument(description="The anonymous device id (1 to 64 characters), for a viewer not signed in.")
]


@strawberry.type(description="The viewer's arm of one flag or experiment.")
class Assignment:
    key: str = strawberry.field(description="The flag's or experiment's key.")
    kind: ExperimentKind = strawberry.field(description="Flag or experiment.")
    arm: str = strawberry.field(description="The arm to show; the first arm when the experiment is off.")
    enabled: bool = strawberry.field(description="False: the experiment is off and everyone gets the first arm.")


@strawberry.type(description="An arm's name and weight.")
class ExperimentArm:
    name: str = strawberry.field(description="The arm's name, as `Assignment.arm` gives it.")
    weight: float = strawberry.field(description="Relative weight: the share of new units assigned to it.")


@strawberry.type(description="A flag or experiment as staff define it.")
class ExperimentDefinition:
    key: str = strawberry.field(description="Stable key; also the hash seed of assignment.")
    kind: ExperimentKind = strawberry.field(description="Flag or experiment.")
    description: str = strawberry.field(description="What it tests.")
    enabled: bool = strawberry.field(description="Whether units are assigned and exposed.")
    arms: list[ExperimentArm] = strawberry.field(description="The arms, control first.")


@strawberry.type(description="One arm's measured outcome (95% intervals, normal approximation).")
class ArmResult:
    arm: str = strawberry.field(description="The arm.")
    weight: float = strawberry.field(description="Its configured weight.")
    exposures: int = strawberry.field(description="Units exposed to it.")
    conversions: int = strawberry.field(description="Exposed users who paid an order after their exposure.")
    conversion_rate: float = strawberry.field(description="conversions / exposures.")
    conversion_low: float = strawberry.field(description="Lower end of the conversion rate's interval.")
    conversion_high: float = strawberry.field(description="Upper end of the conversion rate's interval.")
    revenue: Decimal = strawberry.field(description="Order totals paid by exposed users after exposure.")
    revenue_per_user: float = strawberry.field(description="revenue / exposures.")
    revenue_low: float = strawberry.field(description="Lower end of revenue per user's interval.")
    revenue_high: float = strawberry.field(description="Upper end of revenue per user's interval.")
    retained: int = strawberry.field(description="Exposed users with a behaviour event a day or more after exposure.")
    retention_rate: float = strawberry.field(description="retained / exposures.")
    lift: float = strawberry.field(description="Conversion rate minus the control arm's.")
    lift_low: float = strawberry.field(description="Lower end of the lift's interval.")
    lift_high: float = strawberry.field(description="Upper end of the lift's interval.")


@strawberry.type(description="An experiment's results, per arm, from real orders and events.")
class ExperimentResults:
    experiment: ExperimentDefinition = strawberry.field(description="The experiment.")
    arms: list[ArmResult] = strawberry.field(description="Per arm, control first.")
    srm_chi_square: float = strawberry.field(description="Chi-square of exposures against the weights.")
    srm_p_value: float = strawberry.field(description="Its p-value.")
    sample_ratio_mismatch: bool = strawberry.field(
        description="True when p < 0.001: assignment or exposure logging is broken, do not trust the arms."
    )


def _definition(e: object) -> ExperimentDefinition:
    return ExperimentDefinition(
        key=e.key, kind=e.kind, description=e.description, enabled=e.enabled,  # type: ignore[attr-defined]
        arms=[ExperimentArm(name=str(a["name"]), weight=float(a["weight"])) for a in e.arms],  # type: ignore[attr-defined]
    )


@strawberry.type(description="Experiments for clients and staff.")
class ExperimentQueries:
    @strawberry.field(description="The viewer's (or, before sign-in, the device's) sticky arm of one flag or "
                                  "experiment, logged as an exposure; null for an unknown key.")
    async def experiment(
        self, info: Info, key: KeyArg, device_id: DeviceArg = None
    ) -> Assignment | None:
        experiments.check_device(device_id or None)
        found = await experiments.get_experiment(key)
        if found is None:
            return None
        user_id = info.context.actor.user_id
        arm = await experiments.assign(key, user_id, tracking.checked_device_id(device_id))
        return Assignment(key=found.key, kind=found.kind, arm=arm, enabled=found.enabled)

    @strawberry.field(description="The viewer's arm of every enabled flag and experiment (each an exposure).")
    async def assignments(
        self, info: Info, device_id: DeviceArg = None
    ) -> list[Assignment]:
        found = await experiments.assignments(info.context.actor, tracking.checked_device_id(device_id))
        return [Assignment(key=e.key, kind=e.kind, arm=arm, enabled=e.enabled) for e, arm in found]

    @strawberry.field(description="Staff: an experiment's results per arm with a sample-ratio-mismatch check; "
                                  "null for others and for an unknown key.")
    async def experiment_results(self, info: Info, key: KeyArg) -> ExperimentResults | None:
        found = await experiments.results(info.context.actor, key)
        if found is None:
            return None
        arms = [ArmResult(**a.__dict__) for a in found.arms]
        return ExperimentResults(experiment=_definition(found.experiment), arms=arms, srm_chi_square=found.srm_chi_square,
                                 srm_p_value=found.srm_p_value, sample_ratio_mismatch=found.sample_ratio_mismatch)


@strawberry.input(description="An arm: name and weight.")
class ExperimentArmInput:
    name: str = strawberry.field(description="1 to 32 characters, distinct within the experiment.")
    weight: float = strawberry.field(description="Non-negative relative weight.")


@strawberry.input(description="A flag or experiment to create or change.")
class DefineExperimentInput:
    key: str = strawberry.field(description="1 to 64 letters, digits, '-', '_' or '.'; an existing key is changed.")
    kind: ExperimentKind = strawberry.field(default=Kind.EXPERIMENT, description="Flag or experiment.")
    description: str = strawberry.field(default="", description="What it tests (at most 300 characters).")
    arms: list[ExperimentArmInput] = strawberry.field(
        default_factory=list, description="Control first; a flag may leave this empty (off 0, on 100)."
    )
    enabled: bool = strawberry.field(default=True, description="False: everyone gets the first arm, nothing logged.")


@strawberry.type(description="Result of `defineExperiment`.")
class DefineExperimentPayload:
    errors: list[UserError] = errors_field()
    experiment: ExperimentDefinition | None = strawberry.field(default=None, description="As stored.")


@strawberry.type(description="Experiment administration.")
class ExperimentMutations:
    @mutation(description="ADMIN: create or change a flag or experiment; units already exposed keep their arm.")
    async def define_experiment(self, info: Info, input: DefineExperimentInput) -> DefineExperimentPayload:
        stored = await experiments.define(info.context.actor, experiments.NewExperiment(
            key=input.key, description=input.description, kind=Kind(input.kind.value),
            arms=[(a.name, a.weight) for a in input.arms], enabled=input.enabled))
        return DefineExperimentPayload(experiment=_definition(stored))
