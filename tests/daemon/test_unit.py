"""The shipped systemd unit: hardened to an exposure of 2.0 or lower as ``systemd-analyze security``
rates it offline, with the files installation needs beside it (skipped, saying why, where
systemd-analyze is missing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "intaked.service"
MAX_EXPOSURE = 2.0


def exposure_of(unit: Path) -> float:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: the systemd package)")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert found, f"no exposure level in systemd-analyze's output:\n{result.stdout}{result.stderr}"
    return float(found.group(1))


def test_the_unit_is_rated_2_0_or_lower() -> None:
    assert exposure_of(UNIT) <= MAX_EXPOSURE


def test_the_rating_falls_when_hardening_is_taken_away(tmp_path: Path) -> None:
    """The check reads the unit: without its hardening the same unit is rated unsafe."""
    kept = [
        line
        for line in UNIT.read_text().splitlines()
        if not line.startswith(
            ("Protect", "Private", "Restrict", "SystemCall", "NoNewPrivileges", "Capability")
        )
    ]
    bare = tmp_path / "intaked.service"
    bare.write_text("\n".join(kept) + "\n")
    assert exposure_of(bare) > MAX_EXPOSURE + 3


def test_installation_needs_only_the_shipped_files() -> None:
    """The unit's user comes from the sysusers.d file, its configuration directory from the
    tmpfiles.d file (owned by the user's group), its state from StateDirectory=."""
    unit = UNIT.read_text()
    sysusers = (REPO / "systemd" / "intaked.sysusers.conf").read_text()
    tmpfiles = (REPO / "systemd" / "intaked.tmpfiles.conf").read_text()
    user = re.search(r"^User=(\S+)$", unit, re.MULTILINE)
    assert user and re.search(rf"^u {user.group(1)} ", sysusers, re.MULTILINE)
    assert re.search(rf"^d /etc/intaked 0750 root {user.group(1)} ", tmpfiles, re.MULTILINE)
    assert re.search(r"^StateDirectory=intaked$", unit, re.MULTILINE)
    assert re.search(r"^Type=notify$", unit, re.MULTILINE)


def test_the_unit_asks_for_notify_and_a_watchdog() -> None:
    """Type=notify with the main process alone allowed to notify, and a watchdog (the front pings
    it only while every process makes progress: tests/daemon/test_notify.py)."""
    unit = UNIT.read_text()
    assert re.search(r"^Type=notify$", unit, re.MULTILINE)
    assert re.search(r"^NotifyAccess=main$", unit, re.MULTILINE)
    watchdog = re.search(r"^WatchdogSec=(\d+)$", unit, re.MULTILINE)
    assert watchdog and 10 <= int(watchdog.group(1)) <= 120
