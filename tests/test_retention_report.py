"""The retention report (`kameng report --out DIR`) and the staff dashboard (/dashboard): the
files are written and valid (CSV, JSON, PNG, SVG), the command works on the demo data, and the
dashboard draws the charts in headless Chromium for an admin and refuses everyone else."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, expect

from kameng import clock
from models.accounts.users import Role
from resolvers.lifecycle import analytics
from service import report
from tests.browser import chromium, tab
from tests.conftest import Stack
from tests.factories import make_user, make_users, token_for
from tests.test_retention_analytics import at, products, purchase, visit

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"  # every factory user's


def check_files(out: Path) -> None:
    """Every section's CSV and JSON, every chart's PNG and SVG, all readable as what they claim."""
    for section in report.SECTIONS:
        rows = json.loads((out / f"{section.name}.json").read_text())
        with (out / f"{section.name}.csv").open(newline="") as handle:
            assert len(list(csv.DictReader(handle))) == len(rows), section.name
        if section.chart is None:
            continue
        with Image.open(out / f"{section.name}.png") as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200, section.name
        root = ElementTree.parse(out / f"{section.name}.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", section.name
    assert set(json.loads((out / "report.json").read_text())) >= {"repurchase_rate", "cohorts", "ltv_curve"}


async def test_the_report_writes_tables_and_charts(stack: Stack, tmp_path: Path) -> None:
    y = 2016
    a, b = await products()
    buyers = await make_users(6)
    for i, buyer in enumerate(buyers):  # six January buyers, the first four back in February, two in March
        await purchase(buyer, a, at(y, 1, 3 + i))
        await visit(buyer, at(y, 1, 3 + i))
        if i < 4:
            await purchase(buyer, b, at(y, 2, 10 + i))
        if i < 2:
            await purchase(buyer, a, at(y, 3, 1 + i))
    computed = await analytics.compute(date(y, 1, 1), date(y, 4, 1))
    written = report.write(computed, tmp_path)
    assert {p.suffix for p in written} == {".csv", ".json", ".png", ".svg"}
    check_files(tmp_path)
    with (tmp_path / "summary.csv").open(newline="") as handle:
        summary = {row["metric"]: row for row in csv.DictReader(handle)}
    assert summary["repurchase_rate"]["value"] == str(4 / 6) and summary["repurchase_rate"]["users"] == "6"
    assert summary["unprompted_return_share"]["suppressed"] == "False"
    with (tmp_path / "cohort_retention.csv").open(newline="") as handle:
        cells = [(r["cohort"], r["age_months"], r["retention"], r["ltv"]) for r in csv.DictReader(handle)]
    # January: 6 x 10 = 60; February 4 x 20 = 80; March 2 x 10 = 20 -> per buyer 10, 23.33, 26.67.
    assert cells == [(f"{y}-01", "0", "1.0", "10.00"), (f"{y}-01", "1", str(4 / 6), "23.33"),
                     (f"{y}-01", "2", str(2 / 6), "26.67")]
    # The dashboard's SVG comes from the same drawing: the cohort's label and its cells are there.
    drawn = report.svg("cohort_retention", computed)
    assert f"{y}-01 (n=6)" in drawn and "67%" in drawn and "33%" in drawn
    assert f"{y}-01 (n=6)" in (tmp_path / "cohort_retention.svg").read_text()


def test_kameng_report_on_the_demo_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMENG_") and k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")}
    env["KAMENG_DATA_DIR"] = str(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True, text=True, env=env,
                              timeout=240, cwd=ROOT)

    seeded = run("seed", "--demo")
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    out = tmp_path / "report"
    made = run("report", "--out", str(out))
    assert made.returncode == 0, made.stderr[-2000:]
    assert "cohort_retention.svg" in made.stdout
    check_files(out)
    cohorts = json.loads((out / "cohort_retention.json").read_text())
    shown = {row["cohort"] for row in cohorts if not row["suppressed"]}
    assert len(shown) >= 6, shown  # months of cohorts big enough to show
    summary = {row["metric"]: row for row in json.loads((out / "summary.json").read_text())}
    assert summary["buyers"]["value"] >= 300 and 0 < summary["repurchase_rate"]["value"] < 1
    assert 0 < summary["unprompted_return_share"]["value"] < 1
    bad = run("report", "--out", str(out), "--since", "2026-13-01")
    assert bad.returncode == 2 and "--since" in bad.stderr


# -- the dashboard ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


async def recent_buyers() -> None:
    """Six buyers this month and last, so that the default period has unsuppressed numbers."""
    a, _ = await products()
    now = clock.now()
    for buyer in await make_users(6):
        await purchase(buyer, a, now - timedelta(days=35))
        await purchase(buyer, a, now - timedelta(hours=2))
        await visit(buyer, now - timedelta(hours=1))


async def test_the_dashboard_draws_the_charts_for_an_admin(browser: Browser, stack: Stack) -> None:
    await recent_buyers()
    admin = await make_user(Role.ADMIN, "Admin")
    async with tab(browser, stack.url) as opened:
        page = opened.page
        await page.goto(stack.url + "/dashboard")
        await expect(page.locator("#hint")).to_be_visible()
        await page.locator("#signin input[name=email]").fill(admin.email)
        await page.locator("#signin input[name=password]").fill(PASSWORD)
        await page.locator("#signin button[type=submit]").click()
        await expect(page.locator("body")).to_have_attribute("data-state", "ready", timeout=30_000)
        figures = page.locator("#charts figure.chart img")
        await expect(figures).to_have_count(len(report.CHARTS))
        for i in range(len(report.CHARTS)):  # each SVG decoded and laid out by the browser
            assert await figures.nth(i).evaluate("img => img.complete && img.naturalWidth > 300")
        names = await page.locator("#charts figure.chart").evaluate_all("els => els.map(e => e.dataset.chart)")
        assert names == list(report.CHARTS)
        buyers = page.locator("#summary tr[data-metric=buyers] td").nth(1)
        assert int(await buyers.text_content() or "0") >= 6
        await expect(page.locator("#summary tbody tr")).to_have_count(7)
        await opened.screenshot("dashboard-admin")
        opened.assert_stayed_home()


@pytest.mark.parametrize("role", [Role.BUYER, Role.MODERATOR])
async def test_the_dashboard_refuses_everyone_else(role: Role, browser: Browser, stack: Stack) -> None:
    user = await make_user(role, role.value.title())
    async with tab(browser, stack.url) as opened:
        page = opened.page
        await page.goto(stack.url + "/dashboard")
        await page.locator("#signin input[name=email]").fill(user.email)
        await page.locator("#signin input[name=password]").fill(PASSWORD)
        await page.locator("#signin button[type=submit]").click()
        await expect(page.locator("body")).to_have_attribute("data-state", "refused")
        await expect(page.locator("#problem")).to_have_text("Only admins can see the retention analytics.")
        await expect(page.locator("#charts figure")).to_have_count(0)
        await expect(page.locator("#summary-box")).to_be_hidden()
        opened.assert_stayed_home()
    # And the charts' endpoint itself, with their token or none.
    async with httpx.AsyncClient(base_url=stack.url) as http:
        refused = await http.get("/dashboard/charts", headers={"authorization": f"Bearer {await token_for(user)}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
        anonymous = await http.get("/dashboard/charts")
        assert anonymous.status_code == 401 and "svg" not in anonymous.text
        forged = await http.get("/dashboard/charts", headers={"authorization": "Bearer not-a-token"})
        assert forged.status_code == 401


async def test_the_charts_endpoint_answers_an_admin(stack: Stack) -> None:
    admin = await make_user(Role.ADMIN, "Admin")
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
        auth = {"authorization": f"Bearer {await token_for(admin)}"}
        answered = await http.get("/dashboard/charts", params={"since": "2016-01-01", "until": "2016-04-01"}, headers=auth)
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert (body["since"], body["until"]) == ("2016-01-01", "2016-04-01")
        assert [c["name"] for c in body["charts"]] == list(report.CHARTS)
        for chart in body["charts"]:
            assert ElementTree.fromstring(chart["svg"].encode()).tag == "{http://www.w3.org/2000/svg}svg"
        bad = await http.get("/dashboard/charts", params={"since": "yesterday"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "since"
