"""The command line is assembled from intaked/commands/, one module per top-level verb: every verb
that ``intaked --help`` lists answers its own ``--help``, every module there is a verb's (or
shared by them), and ``intaked run`` (a real process) imports no other verb's module, so the
daemon's front process stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from intaked.cli import main
from intaked.commands import VERBS

COMMANDS_DIR = Path(__file__).resolve().parents[2] / "intaked" / "commands"
SHARED_MODULES = {"__init__", "shared", "lifecycle_errors", "convene"}


def listed_verbs(capsys: pytest.CaptureFixture[str]) -> list[str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listing = capsys.readouterr().out.split("positional arguments:")[1].split("options:")[0]
    return re.findall(r"^    (\S+)", listing, flags=re.MULTILINE)


def test_each_verb_in_the_help_answers_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    verbs = listed_verbs(capsys)
    assert "run" in verbs and "oncall" in verbs and "calls" in verbs
    for verb in verbs:
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: intaked {verb} ")


def test_every_module_of_intaked_commands_is_a_verb_or_shared_by_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    modules = {path.stem for path in COMMANDS_DIR.glob("*.py")}
    assert modules - SHARED_MODULES == set(VERBS.values())
    assert listed_verbs(capsys) == list(VERBS)


def test_intaked_run_imports_no_other_verb() -> None:
    probe = (
        "import sys\n"
        "from intaked.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('intaked.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(result.stdout.split("\n")[-2].split())
    assert {m for m in loaded if m.startswith("intaked.commands.")} == {
        "intaked.commands.run",
        "intaked.commands.shared",
    }
    for heavy in (
        "intaked.tickets.lifecycle",
        "intaked.paging",
        "intaked.routing",
        "intaked.parsing",
        "intaked.daemon",
    ):
        assert heavy not in loaded
