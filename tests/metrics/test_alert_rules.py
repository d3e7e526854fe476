"""The example alert rules (config/intaked-alerts.yml) checked by Prometheus's own promtool:
the file loads, its unit tests (tests/metrics/alert_rules_test.yml) fire each alert when it
should and not before, and every intaked metric a rule names is one the daemon serves (the names
served are read from a real scrape in tests/metrics/test_server.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config" / "intaked-alerts.yml"
UNIT_TESTS = Path(__file__).with_name("alert_rules_test.yml")
#: scripts/bootstrap --test unpacks Debian's promtool here when none is installed.
BOOTSTRAPPED = REPO / ".promtool" / "usr" / "bin" / "promtool"


def promtool() -> str:
    found = shutil.which("promtool") or (str(BOOTSTRAPPED) if BOOTSTRAPPED.is_file() else None)
    if found is None:
        pytest.skip(
            "promtool is not installed (scripts/bootstrap --test unpacks it from Debian's prometheus)"
        )
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)


def test_the_rules_file_loads() -> None:
    result = run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 16 rules found" in result.stdout


def test_each_alert_fires_when_it_should_and_not_before() -> None:
    result = run("test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def named_metrics() -> set[str]:
    """The metric families the rules' expressions name (``_bucket``, ``_total`` and the like
    taken off, as prometheus_client's parser names families)."""
    names = set(re.findall(r"\b(intaked_[a-z_]+|process_[a-z_]+)", RULES.read_text(encoding="utf-8")))
    return {re.sub(r"_(bucket|total|count|sum)$", "", name) for name in names}


def test_the_rules_name_metrics_by_their_family() -> None:
    assert {"intaked_ack_latency_seconds", "intaked_processes_well", "process_start_time_seconds"} <= (
        named_metrics()
    )
