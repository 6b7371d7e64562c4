"""Recommendations versus popularity, the first A/B experiment (issue 12 item 4): a user's arm
is stable (concurrently, and across a weight change once stored), the popularity arm gets the
popularity list and the model arm the personal one, the arm costs no SQL on the serving path,
and the staff's results count the exposures per arm."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from models.accounts.users import Role, User
from models.lifecycle.experiments import Experiment, ExperimentExposure
from resolvers.discovery import recommendations, training
from resolvers.lifecycle import experiments, exposures
from tests.conftest import count_queries
from tests.factories import make_user, token_for
from tests.test_recommendations import gid, home, make_world, signed, view_post

KEY = recommendations.EXPERIMENT
DEFINE = """mutation($input: DefineExperimentInput!) { defineExperiment(input: $input) { errors { code } } }"""
RESULTS = """query($key: String!) { experimentResults(key: $key) { arms { arm exposures } } }"""


@pytest.fixture(autouse=True)
async def half_and_half(stack) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    found = await experiments.get_experiment(KEY)
    assert found is not None
    await Experiment.filter(id=found.id).update(arms=[{"name": "popularity", "weight": 50},
                                                      {"name": "model", "weight": 50}], enabled=True)
    experiments.forget(KEY)
    yield
    await Experiment.filter(id=found.id).update(arms=found.arms, enabled=found.enabled)
    experiments.forget(KEY)


async def one_per_arm() -> dict[str, User]:
    """New users until the hash has put one in each arm (about two tries each)."""
    experiment = await experiments.get_experiment(KEY)
    assert experiment is not None
    found: dict[str, User] = {}
    while len(found) < 2:
        user = await make_user(nickname="Reader")
        found.setdefault(experiments.choose(experiment.arms, experiments.bucket(KEY, f"user:{user.id}")), user)
    return found


async def exposures_per_arm(admin: Any) -> dict[str, int]:
    body = await admin.gql(RESULTS, {"key": KEY})
    return {a["arm"]: a["exposures"] for a in body["experimentResults"]["arms"]}


async def test_each_arm_gets_its_list_stably_and_the_results_count_it(make_client) -> None:  # type: ignore[no-untyped-def]
    admin = make_client()
    admin.token = await token_for(await make_user(Role.ADMIN, "Admin"))
    await exposures.flush()
    before = await exposures_per_arm(admin)
    world = await make_world()
    readers = await one_per_arm()
    for reader in readers.values():
        await view_post(reader, world.guide.id, times=2)
    await training.train()
    clients = {arm: await signed(make_client, user) for arm, user in readers.items()}

    # Stable: concurrent requests of one user all get the same arm.
    served = {arm: await asyncio.gather(*(home(client, first=8) for _ in range(4))) for arm, client in clients.items()}
    popular, personal = served["popularity"], served["model"]
    assert {s["modelVersion"] for s in popular} == {"popularity"}
    assert len({s["modelVersion"] for s in personal}) == 1 and personal[0]["modelVersion"].startswith("ease-")
    # The popularity arm: the trending list, the same for everyone, nothing personal.
    assert all(i["reason"]["kind"] in ("TRENDING", "NEW_AND_WELL_REVIEWED") for i in popular[0]["items"])
    stranger = (await one_per_arm())["popularity"]
    assert [i["product"]["id"] for i in (await home(await signed(make_client, stranger), first=8))["items"]] == \
        [i["product"]["id"] for i in popular[0]["items"]]
    # The model arm: the guide the reader read brings its product.
    shown = {i["product"]["id"]: i["reason"]["kind"] for i in personal[0]["items"]}
    assert shown.get(gid("Product", world.a.id)) == "FROM_GUIDE_YOU_READ", personal[0]
    tokens = {arm: recommendations.read_token(s[0]["items"][0]["token"]) for arm, s in served.items()}
    assert tokens["popularity"].model_version == "popularity"  # type: ignore[union-attr]
    assert tokens["model"].model_version == personal[0]["modelVersion"]  # type: ignore[union-attr]

    # Exposures are written off the request path, once per user, with the arm served.
    await exposures.flush()
    experiment = await Experiment.get(key=KEY)
    stored = await ExperimentExposure.filter(experiment_id=experiment.id,
                                             user_id__in=[u.id for u in readers.values()]).values_list("user_id", "arm")
    assert sorted(stored) == sorted((u.id, arm) for arm, u in readers.items())
    after = await exposures_per_arm(admin)
    assert after.get("popularity", 0) - before.get("popularity", 0) == 2  # the reader and the stranger
    assert after.get("model", 0) - before.get("model", 0) == 1

    # Staff move all weight to the model: the exposed keep their arm, in this process at once...
    moved = await admin.gql(DEFINE, {"input": {"key": KEY, "arms": [{"name": "popularity", "weight": 0},
                                                                    {"name": "model", "weight": 100}]}})
    assert moved["defineExperiment"]["errors"] == []
    assert (await home(clients["popularity"]))["modelVersion"] == "popularity"
    # ...and in a process that never saw them, from its first flush on (the stored arm wins).
    exposures.state().arms.clear()
    await home(clients["popularity"])
    await exposures.flush()
    assert (await home(clients["popularity"]))["modelVersion"] == "popularity"
    assert await ExperimentExposure.filter(experiment_id=experiment.id, user_id=readers["popularity"].id).count() == 1
    # Newcomers now all get the model.
    newcomer = await signed(make_client, await make_user())
    assert (await home(newcomer))["modelVersion"] != "popularity"


async def test_the_arm_costs_no_sql_and_guests_are_assigned_by_device(make_client) -> None:  # type: ignore[no-untyped-def]
    readers = await one_per_arm()
    client = await signed(make_client, readers["model"])
    await home(client)  # warm: the definition is cached and this user's arm remembered
    await exposures.flush()  # the flusher's own statements must not land in the measured window
    with count_queries() as queries:
        await home(client)
    assert not [s for s in queries.statements if "experiment" in s], queries.statements
    # A guest is assigned by device, and signing in on that device keeps the device's arm.
    guest = make_client()
    device = f"device-{uuid.uuid4().hex}"
    first = (await home(guest, device=device))["modelVersion"]
    await exposures.flush()
    user = await make_user()
    signed_in = await signed(make_client, user)
    assert (await home(signed_in, device=device))["modelVersion"] == first
    await exposures.flush()
    experiment = await Experiment.get(key=KEY)
    rows = await ExperimentExposure.filter(experiment_id=experiment.id, unit__in=[f"device:{device}", f"user:{user.id}"])
    assert {r.unit for r in rows} == {f"device:{device}", f"user:{user.id}"}
    assert {r.user_id for r in rows} == {user.id}
    assert len({r.arm for r in rows}) == 1
    # No user and no device (Product.similar): the model, and nothing logged.
    assert await recommendations.choose_arm(recommendations.Actor(), None, recommendations.Surface.PRODUCT) == "model"
