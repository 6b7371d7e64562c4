"""Experiments and feature flags (issue 12 item 4): sticky hashed assignment that another
process computes the same, exposures once per unit, and per-arm results from real orders
and events with a sample-ratio-mismatch check."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

from models.accounts.users import Role
from models.discovery.events import EventKind
from models.lifecycle.experiments import Experiment, ExperimentExposure
from resolvers.discovery.tracking import TrackedEvent, record
from resolvers.lifecycle import experiments
from tests.factories import make_product, make_user, token_for
from tests.test_points import pay_and_deliver, place_order

ROOT = Path(__file__).resolve().parent.parent
DEFINE = """mutation($input: DefineExperimentInput!) { defineExperiment(input: $input) {
  errors { code field } experiment { key kind arms { name weight } } } }"""
ASSIGN = """query($key: String!, $device: String) { experiment(key: $key, deviceId: $device) { key arm enabled } }"""
ALL = """query($device: String) { assignments(deviceId: $device) { key arm kind } }"""
RESULTS = """query($key: String!) { experimentResults(key: $key) { sampleRatioMismatch srmPValue srmChiSquare
  arms { arm exposures conversions conversionRate conversionLow conversionHigh revenue revenuePerUser retained lift } } }"""


async def admin_client(make_client):  # type: ignore[no-untyped-def]
    client = make_client()
    client.token = await token_for(await make_user(Role.ADMIN, "Admin"))
    return client


def test_the_hash_is_growthbooks_and_independent_of_the_process() -> None:
    # Pinned: a change to the hash would reshuffle every running experiment, so it must fail here.
    assert (experiments.bucket("", "a"), experiments.bucket("", "b")) == (0.0216, 0.9054)
    assert experiments.bucket("recommendations", "user:1") == 0.0024
    units = [f"user:{i}" for i in range(200)]
    here = [experiments.choose([{"name": "x", "weight": 1}, {"name": "y", "weight": 3}], experiments.bucket("k", u))
            for u in units]
    code = ("import json,sys; from resolvers.lifecycle import experiments as e; "
            "print(json.dumps([e.choose([{'name':'x','weight':1},{'name':'y','weight':3}], e.bucket('k', u)) "
            "for u in json.loads(sys.argv[1])]))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(units)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == here
    assert 100 < here.count("y") < 180  # about three quarters


async def test_assignment_is_sticky_and_exposed_once(make_client) -> None:  # type: ignore[no-untyped-def]
    admin = await admin_client(make_client)
    key = f"exp-{uuid.uuid4().hex[:8]}"
    arms = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]
    defined = (await admin.gql(DEFINE, {"input": {"key": key, "arms": arms}}))["defineExperiment"]
    assert defined["errors"] == [] and [a["name"] for a in defined["experiment"]["arms"]] == ["control", "treatment"]
    bad = (await admin.gql(DEFINE, {"input": {"key": key, "arms": [{"name": "only", "weight": 1}]}}))["defineExperiment"]
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", "arms")]
    # A guest's device, then the same person signed in: same arm, concurrently asked, one exposure each.
    device = f"dev-{uuid.uuid4().hex}"
    guest = make_client()
    first = await asyncio.gather(*(guest.gql(ASSIGN, {"key": key, "device": device}) for _ in range(5)))
    arm = first[0]["experiment"]["arm"]
    assert {r["experiment"]["arm"] for r in first} == {arm}
    user = await make_user()
    signed = make_client()
    signed.token = await token_for(user)
    assert (await signed.gql(ASSIGN, {"key": key, "device": device}))["experiment"]["arm"] == arm
    experiment = await Experiment.get(key=key)
    rows = await ExperimentExposure.filter(experiment_id=experiment.id)
    assert sorted(r.unit for r in rows) == sorted([f"device:{device}", f"user:{user.id}"])
    assert {r.user_id for r in rows} == {user.id}
    # Staff move all weight to one arm: those exposed keep theirs ("restart": a fresh read).
    other = "treatment" if arm == "control" else "control"
    await admin.gql(DEFINE, {"input": {"key": key, "arms": [{"name": "control", "weight": 0 if other == "treatment" else 1},
                                                              {"name": "treatment", "weight": 1 if other == "treatment" else 0}]}})
    assert (await signed.gql(ASSIGN, {"key": key}))["experiment"]["arm"] == arm
    assert await experiments.assign(key, None, f"dev-{uuid.uuid4().hex}") == other
    # The known experiment exists for the recommendations helper, and `assignments` lists it.
    listed = {a["key"]: a["arm"] for a in (await signed.gql(ALL))["assignments"]}
    assert listed[key] == arm and listed["recommendations"] in {"model", "popularity"}
    assert await experiments.assign("recommendations", user.id, None) == listed["recommendations"]
    assert (await make_client().gql(ASSIGN, {"key": "no-such-key"}))["experiment"] is None


async def test_results_count_exposures_and_conversions_from_real_orders(make_client) -> None:  # type: ignore[no-untyped-def]
    admin = await admin_client(make_client)
    key = f"exp-{uuid.uuid4().hex[:8]}"
    await admin.gql(DEFINE, {"input": {"key": key, "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}})
    users = [await make_user() for _ in range(12)]
    arms = {u.id: await experiments.assign(key, u.id, None) for u in users}
    product = await make_product(price="10.00", keys=20)
    buyers = [u for u in users if arms[u.id] == "b"][:2] + [u for u in users if arms[u.id] == "a"][:1]
    for buyer in buyers:
        await pay_and_deliver(buyer, await place_order(buyer, product))
    await record([TrackedEvent(event_id=f"r-{uuid.uuid4().hex}", kind=EventKind.PAGE_VISIT, user_id=users[0].id)])
    body = (await admin.gql(RESULTS, {"key": key}))["experimentResults"]
    by_arm = {a["arm"]: a for a in body["arms"]}
    for name in ("a", "b"):
        exposed = sum(1 for u in users if arms[u.id] == name)
        bought = sum(1 for u in buyers if arms[u.id] == name)
        assert (by_arm[name]["exposures"], by_arm[name]["conversions"]) == (exposed, bought)
        assert by_arm[name]["revenue"] == f"{10 * bought:.2f}"
        assert by_arm[name]["conversionLow"] <= by_arm[name]["conversionRate"] <= by_arm[name]["conversionHigh"]
    assert 0 <= body["srmPValue"] <= 1 and body["sampleRatioMismatch"] is (body["srmPValue"] < 0.001)
    # Others see nothing.
    assert (await make_client().gql(RESULTS, {"key": key}))["experimentResults"] is None


def test_the_srm_check_flags_a_broken_split() -> None:
    chi, p = experiments.srm([5000, 5000], [1, 1])
    assert chi == 0 and p == 1
    chi, p = experiments.srm([5000, 4500], [1, 1])
    assert p < 0.001  # chi-square 26.3 on one degree of freedom
    assert abs(experiments.chi_square_sf(3.841, 1) - 0.05) < 1e-3
    assert abs(experiments.chi_square_sf(5.991, 2) - 0.05) < 1e-3
    assert abs(experiments.chi_square_sf(7.815, 3) - 0.05) < 1e-3
