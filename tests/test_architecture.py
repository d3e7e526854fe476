"""The package graph stays as docs/architecture.md draws it (scripts/architecture reads it from
the source, function-level imports included): no cycles, and the bottom row (config, ports,
parsing) imports nothing of intaked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "architecture"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_the_package_import_graph_has_no_cycles(report: dict[str, Any]) -> None:
    assert report["cycles"] == [], f"packages that import each other: {report['cycles']}"


@pytest.mark.parametrize("package", ["config", "ports", "parsing"])
def test_the_bottom_row_imports_nothing_of_intaked(report: dict[str, Any], package: str) -> None:
    assert report["packages"][package] == []


def test_the_edges_are_imported_only_by_the_processes(report: dict[str, Any]) -> None:
    """channels/ and twilio/ speak to the outside world; only the processes (and the command that
    starts them) wire them in."""
    wiring = {"daemon", "backoffice", "scheduler", "commands", "twilio"}
    for package, targets in report["packages"].items():
        for edge in ("channels", "twilio"):
            if edge in targets:
                assert package in wiring, f"{package} imports the edge package {edge}"


#: Tests that are about the whole tree or the suite itself, not one package: kept at tests/.
WHOLE_TREE_TESTS = {"test_architecture.py", "test_static.py", "test_workers.py"}


def test_the_tests_mirror_the_package_layout() -> None:
    """tests/<name>/ holds the tests of intaked/<name>/ (or of the module intaked/<name>.py);
    only tests of the whole tree stand at tests/ itself."""
    tests = REPO / "tests"
    intaked = REPO / "intaked"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and (p / "__init__.py").exists()} - {"support"}
    strays = sorted(
        name for name in folders if not (intaked / name).is_dir() and not (intaked / f"{name}.py").is_file()
    )
    assert strays == [], f"test folders that name no package or module of intaked: {strays}"
    loose = sorted(p.name for p in tests.glob("test_*.py") if p.name not in WHOLE_TREE_TESTS)
    assert loose == [], f"tests at tests/ that belong in tests/<package>/: {loose}"
