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
