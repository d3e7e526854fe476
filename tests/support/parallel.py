"""The pytest side of running the suite on several workers (pytest-xdist; see workers.py).

Loaded from tests/conftest.py. On a worker it runs every test of :data:`RUNS_ALONE` with the
run's lock held exclusively and every other test with it shared, and a test of a
:data:`FIXED_PORT_GROUPS` group with its group's lock too. It refuses to start when either table
names a module that no longer exists (a renamed module would otherwise silently lose its
protection). Without xdist (``-n 0``) nothing is locked.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.support.workers import FIXED_PORT_GROUPS, RUNS_ALONE, RunLock, fixed_port_group, runs_alone

TESTS = Path(__file__).resolve().parents[1]
LOCK_DIR_KEY = "intaked_run_lock_dir"


def pytest_configure(config: pytest.Config) -> None:
    present = {path.name for path in TESTS.rglob("test_*.py")}
    missing = sorted((set(RUNS_ALONE) | set(FIXED_PORT_GROUPS)) - present)
    if missing:
        raise pytest.UsageError(
            f"tests/support/workers.py names test modules that do not exist: {', '.join(missing)}"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the controller, for each worker: the directory holding the run's lock."""
    config: pytest.Config = node.config
    directory = getattr(config, "_intaked_lock_dir", None)
    if directory is None:
        directory = tempfile.mkdtemp(prefix="intaked-test-run-")
        config._intaked_lock_dir = directory  # type: ignore[attr-defined]
    node.workerinput[LOCK_DIR_KEY] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = getattr(config, "_intaked_lock_dir", None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """Setup, call and teardown of one test under the run's lock (outside its time-out)."""
    workerinput = getattr(item.config, "workerinput", None)
    if workerinput is None:  # not an xdist worker
        yield
        return
    lock = RunLock(Path(workerinput[LOCK_DIR_KEY]))
    group = fixed_port_group(str(item.path))
    with contextlib.ExitStack() as held:
        if group is not None:  # first the group, so a test waiting for it blocks no one else
            held.enter_context(lock.group(group))
        held.enter_context(lock.exclusive() if runs_alone(str(item.path)) else lock.shared())
        yield
