"""The daemon's processes (the front, the back office, its sender) write JSON lines to one shared
stderr; every line stays a line of its own, whole."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

WRITERS = 3
LINES_EACH = 10000

WRITER = """
import sys, time
import structlog
from intaked.logs import configure_logging
configure_logging("info", "json", process=sys.argv[1])
log = structlog.get_logger("test")
start_at = float(sys.argv[2])
while time.time() < start_at:  # all writers begin together, whatever their start-up took
    time.sleep(0.001)
for n in range(int(sys.argv[3])):
    log.info("line", n=n)
"""


def test_processes_sharing_stderr_never_glue_their_lines(tmp_path: Path) -> None:
    log = tmp_path / "shared.log"
    start_at = time.time() + 3.0
    with log.open("ab") as shared:
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, f"writer-{w}", str(start_at), str(LINES_EACH)],
                stderr=shared,
            )
            for w in range(WRITERS)
        ]
        assert all(writer.wait(120) == 0 for writer in writers)
    lines = log.read_text(encoding="utf-8").splitlines()
    glued = [line for line in lines if line.count('"event"') != 1]
    assert not glued, f"{len(glued)} of {len(lines)} lines hold two events or none, e.g. {glued[0]!r}"
    events = [json.loads(line) for line in lines]
    for w in range(WRITERS):
        assert [e["n"] for e in events if e["process"] == f"writer-{w}"] == list(range(LINES_EACH))
