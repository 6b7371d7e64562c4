"""The layout's rules, executed: the import-linter contracts in pyproject.toml hold (and
catch a deliberately wrong import), no two modules import each other in a cycle, and no
module outgrows 400 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "schema", "workers", "resolvers", "subscriptions", "models", "kameng")
MAX_LINES = 400


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(cwd)}
    )


def test_import_contracts_hold() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "complaint"),
    [
        ("kameng/clock.py", "import resolvers.errors", "kameng is not allowed to import resolvers"),
        ("models/outbox.py", "import subscriptions.topics", "models is not allowed to import subscriptions"),
        ("resolvers/pagination.py", "import schema.base", "resolvers is not allowed to import schema"),
        ("workers/jobs.py", "import schema.context", "workers is not allowed to import schema"),
    ],
)
def test_a_wrong_import_breaks_the_contracts(tmp_path: Path, module: str, wrong_import: str, complaint: str) -> None:
    copy = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__", "static", "node_modules"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # deliberately wrong\n")
    done = lint_imports(copy)
    assert done.returncode == 1, done.stdout[-3000:]
    assert complaint in done.stdout, done.stdout[-3000:]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iteratively)."""
    modules = sorted(m for m in graph.modules if m.split(".")[0] in PACKAGES)
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in graph.modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges.get(node, [])
            if child < len(successors):
                work.append((node, child + 1))
                nxt = successors[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def test_no_import_cycle_between_modules() -> None:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("kameng", "kameng.a", "kameng.b", "kameng.c"):
        graph.add_module(name)
    graph.add_import(importer="kameng.a", imported="kameng.b")
    graph.add_import(importer="kameng.b", imported="kameng.c")
    graph.add_import(importer="kameng.c", imported="kameng.a")
    assert _cycles(graph) == [["kameng.a", "kameng.b", "kameng.c"]]


def test_no_module_over_400_lines() -> None:
    sources = [ROOT / "app.py"]
    for package in PACKAGES:
        sources += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    too_long = {str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}
