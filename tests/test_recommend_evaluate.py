"""`kameng recommend evaluate` (issue 11, item 3): leave-last-out HR@K / NDCG@K of the production
model against popularity, on a log generated with a known structure and on a real public log.

The real log is MovieLens-100k (GroupLens; 100,000 ratings of 1,682 films by 943 users, with
timestamps) as shipped inside the `recbole` wheel on PyPI: the fixture downloads that wheel with
pip (the registry only, no other host) into a cache directory and reads the file from the zip.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from resolvers.discovery import model
from service.cli import cli

WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
CACHE = Path(os.environ.get("KAMENG_TEST_DATA", Path.home() / ".cache" / "kameng-test-data"))


def generated_log(path: Path, seed: int = 7) -> None:
    """Users in 20 taste groups of 40 items each; every user takes 12 items from their group in
    a random order and 3 of the 50 overall best sellers (the noise popularity feeds on)."""
    rng = np.random.default_rng(seed)
    groups, per_group, users = 20, 40, 800
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "ts"])
        for user in range(users):
            group = rng.integers(groups)
            taste = rng.choice(per_group, size=12, replace=False, p=_zipf(per_group, rng)) + group * per_group
            popular = rng.choice(50, size=3, replace=False) + groups * per_group
            items = rng.permutation(np.r_[taste, popular])
            for t, item in enumerate(items):
                writer.writerow([f"u{user}", f"i{item}", 1_700_000_000 + user * 1000 + t])


def _zipf(n: int, rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** 0.8
    return rng.permutation(weights / weights.sum())


def evaluate_cli(path: Path, *extra: str) -> tuple[str, dict[str, object]]:
    result = CliRunner().invoke(cli, ["recommend", "evaluate", str(path), "--user-col", "user", "--item-col", "item",
                                      "--time-col", "ts", "--json", *extra])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    return result.output, orjson.loads(last)


def test_generated_log_model_beats_popularity_twice(tmp_path: Path) -> None:
    path = tmp_path / "generated.csv"
    generated_log(path)
    output, figures = evaluate_cli(path)
    assert set(figures) == {"model", "popularity", "train_seconds"}
    m, p = figures["model"], figures["popularity"]
    assert isinstance(m, dict) and isinstance(p, dict)
    assert m["hr"] >= 2 * p["hr"] and m["ndcg"] > p["ndcg"], output
    assert 0 < float(figures["train_seconds"])  # type: ignore[arg-type]
    assert "HR@10" in output and "popularity" in output


@pytest.fixture(scope="module")
def movielens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob("recbole-1.2.1-*.whl"))
    if not wheels:
        pip = [sys.executable, "-m", "pip"]
        if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
            pip = ["pip"]
        subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "-d", str(CACHE), WHEEL],
                       check=True, capture_output=True, timeout=300)
        wheels = sorted(CACHE.glob("recbole-1.2.1-*.whl"))
    out = tmp_path_factory.mktemp("ml100k") / "ml-100k.csv"
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as raw, out.open("w", newline="") as handle:
        lines = raw.read().decode().splitlines()
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "rating", "ts"])  # header: user_id:token item_id:token rating timestamp
        for line in lines[1:]:
            writer.writerow(line.split("\t"))
    return out


def test_movielens_100k_model_beats_popularity_twice(movielens: Path) -> None:
    log = model.read_csv(str(movielens), "user", "item", "ts")
    assert (len(log.users), log.n_users, log.n_items) == (100_000, 943, 1682)
    output, figures = evaluate_cli(movielens)
    m, p = figures["model"], figures["popularity"]
    assert isinstance(m, dict) and isinstance(p, dict)
    assert m["hr"] >= 2 * p["hr"], output
    assert m["ndcg"] >= 2 * p["ndcg"], output


def test_bad_files_and_columns_fail_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("a,b,c\n1,2,3\n")
    result = CliRunner().invoke(cli, ["recommend", "evaluate", str(path), "--user-col", "user", "--item-col", "b",
                                      "--time-col", "c"])
    assert result.exit_code == 2 and "no column user" in result.output
    result = CliRunner().invoke(cli, ["recommend", "evaluate", str(tmp_path / "missing.csv"), "--user-col", "a",
                                      "--item-col", "b", "--time-col", "c"])
    assert result.exit_code == 2


def test_iso_times_and_split_are_leave_last_out(tmp_path: Path) -> None:
    path = tmp_path / "iso.csv"
    path.write_text("u;i;t\nx;1;2026-01-02T00:00:00Z\nx;2;2026-01-01T00:00:00Z\nx;3;2026-01-03\ny;1;2026-01-01\n")
    log = model.read_csv(str(path), "u", "i", "t")
    train, users, items = model.split_last(log)
    assert users.tolist() == [0] and items.tolist() == [2]  # x's latest is item "3"; y has one item only
    assert len(train.users) == 3
