"""Prism (Stoplight) serving Twilio's official API v2010 description, as a stand-in for Twilio.

``prism mock`` checks each request against the spec (required parameters, enums, ``format: uri``,
the AccountSid pattern, Basic auth) and answers with the spec's examples; ``prism proxy --errors``
does the same in front of a stateful fake (tests/support/phone.py) and also checks the fake's
answers against the spec. Prism is installed by ``scripts/bootstrap --test`` into ``.prism/``; the
spec lives in ``../shared/twilio/``. Without either, :func:`prism_unavailable_reason` says why and
the tests skip with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.workers import free_port

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO.parent / "shared" / "twilio" / "twilio_api_v2010.prism-overlay.json"
START_TIMEOUT_SECONDS = 60.0


def prism_binary() -> Path | None:
    """The Prism executable: the repository's ``.prism/`` install, else one on PATH."""
    local = REPO / ".prism" / "node_modules" / ".bin" / "prism"
    if local.exists():
        return local
    found = shutil.which("prism")
    return Path(found) if found else None


def prism_unavailable_reason() -> str | None:
    """Why Prism cannot run here (for ``pytest.skip``), or None."""
    if not SPEC.exists():
        return f"Twilio's API description is absent ({SPEC}): ../shared/twilio is not checked out"
    if prism_binary() is None:
        return "Prism is not installed: run scripts/bootstrap --test (needs node and npm)"
    return None


class Prism:
    """A running Prism process; ``base_url`` is what ``twilio.api_base_url`` should be."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _wait_ready(prism: Prism) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if prism.process.poll() is not None:
            raise RuntimeError(f"Prism exited during start-up:\n{prism.log_text()[-3000:]}")
        try:
            urllib.request.urlopen(prism.base_url + "/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is listening
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Prism did not start in {START_TIMEOUT_SECONDS}s:\n{prism.log_text()[-3000:]}")


@contextmanager
def run_prism(mode: str, log_dir: Path, upstream: str | None = None) -> Iterator[Prism]:
    """Run ``prism mock`` (``upstream`` None) or ``prism proxy --errors SPEC upstream`` until exit."""
    binary = prism_binary()
    if binary is None or not SPEC.exists():
        raise RuntimeError(prism_unavailable_reason())
    port = free_port()
    if mode == "mock":
        args = [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), "-v", "warn", str(SPEC)]
    else:
        assert upstream is not None
        args = [str(binary), "proxy", "--errors", "-h", "127.0.0.1", "-p", str(port), "-v", "warn"]
        args += [str(SPEC), upstream]
    log_path = log_dir / f"prism-{mode}-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
            start_new_session=True,
        )
    prism = Prism(process, port, log_path)
    try:
        _wait_ready(prism)
        yield prism
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
