"""One benchmark on an earlier revision and on this tree, in turn, in one session.

    .venv/bin/python bench/revisions.py --base REV [--rounds 2] smtp_intake.py [its arguments...]

A change that must not make intaked slower (a refactoring) is measured this way: the revision
``--base`` is checked out into a git worktree beside this one (``../bench-base-<rev>``, so that
``../shared`` is found from both), and the benchmark runs there, with that revision's intaked and
its own bench script, and then here, ``--rounds`` times (base, here, base, here...), so that both
see the same machine in the same hour. Each run's output is printed under a heading saying which
tree it measured; the figures to compare are the benchmark's own (intaked's next to the baseline
it measures in that run). Both trees use this interpreter (this tree's ``.venv``) and its Prism.
The worktree is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def run_bench(tree: Path, label: str, script: str, args: list[str]) -> int:
    """Run ``bench/<script>`` of ``tree`` with ``tree``'s intaked first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    print(f"\n===== {label} ({tree}) =====", flush=True)
    started = time.monotonic()
    status = subprocess.run(
        [sys.executable, str(tree / "bench" / script), *args], cwd=tree, env=env
    ).returncode
    print(f"===== {label}: exit {status} after {time.monotonic() - started:.0f} s =====", flush=True)
    return status


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the earlier revision (commit, tag, branch)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("script", help="a benchmark in bench/, e.g. smtp_intake.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's own arguments")
    opts = parser.parse_args()
    base = git("rev-parse", "--verify", f"{opts.base}^{{commit}}")
    here = git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain") else "")
    tree = REPO.parent / f"bench-base-{base[:8]}"
    if not tree.exists():
        git("worktree", "add", "--detach", str(tree), base)
    for shared in (".prism",):  # installed, not tracked: the base tree uses this tree's
        if (REPO / shared).exists() and not (tree / shared).exists():
            (tree / shared).symlink_to(REPO / shared)
    failures = 0
    try:
        for round_ in range(1, opts.rounds + 1):
            failures += run_bench(tree, f"base {base[:8]}, round {round_}", opts.script, opts.args) != 0
            failures += run_bench(REPO, f"here {here}, round {round_}", opts.script, opts.args) != 0
    finally:
        git("worktree", "remove", "--force", str(tree))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
