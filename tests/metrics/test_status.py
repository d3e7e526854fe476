"""``intaked status [--json]`` against the store of a real daemon: the same checks as ``/readyz``
and the main figures, exit 0 when ready; exit 1 naming the failed check when the store cannot be
reached."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from intaked.cli import main
from tests.metrics.scrape import checks
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until
from tests.support.workers import free_port

HELPDESK = "helpdesk@example.com"
REPORT = b"From: a@example.com\r\nTo: helpdesk@example.com\r\nSubject: printer\r\n\r\nIt jams.\r\n"


def config_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "status.toml"
    path.write_text(
        f'[database]\nurl = "{database_url}"\n[metrics]\nlisten = ""\n'
        '[logging]\nlevel = "warning"\nformat = "json"\n',
        encoding="utf-8",
    )
    return path


def status(capsys: pytest.CaptureFixture[str], config: Path, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["status", *extra, "--config", str(config)])
    return code, capsys.readouterr().out


@pytest.fixture
def daemon(db_url: str) -> Iterator[DaemonThread]:
    settings = make_settings(db_url, smtp_intake={"recipients": [HELPDESK]})
    thread = DaemonThread(settings).start()
    yield thread
    thread.stop()


def test_status_json_is_ready_with_the_figures(
    daemon: DaemonThread, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, db_url)
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.sendmail("a@example.com", [HELPDESK], REPORT)
    wait_until(lambda: daemon.ticket_count() == 1, what="the ticket")
    _, out = wait_until(lambda: (r := status(capsys, config, "--json"))[0] == 0 and r, what="ready")
    answer = json.loads(out)
    assert answer["ready"] is True
    assert checks(answer) == {"database": True, "schema": True, "workers": True}
    figures = answer["figures"]
    assert figures["inbound_items"] == {"smtp/done": 1}
    assert figures["tickets"]["new"] == 1
    assert figures["ledger_backlog"] == 0
    assert {w["role"] for w in figures["workers"]} >= {"front", "back_office.intake"}


def test_status_text_says_ready(
    daemon: DaemonThread, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, db_url)
    _, out = wait_until(lambda: (r := status(capsys, config))[0] == 0 and r, what="ready")
    assert out.splitlines()[0] == "ready"
    assert "  [ok] database: reachable" in out
    assert "ledger: 0 waiting" in out


def test_status_names_an_unreachable_store_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, f"postgresql://intaked@127.0.0.1:{free_port()}/nowhere")
    code, out = status(capsys, config, "--json")
    assert code == 1
    answer = json.loads(out)
    assert answer["ready"] is False
    assert checks(answer) == {"database": False, "schema": False, "workers": False}
    assert answer["figures"] is None


def test_status_lists_the_nodes_and_a_killed_one_as_gone(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two whole daemons on one PostgreSQL database: both alive with their processes; node-b
    killed (SIGKILL to its tree, as a dead host) is shown gone once node-a has judged it."""
    from tests.support.cluster import Node

    nodes = [Node(name, tmp_path / name, pg_url) for name in ("node-a", "node-b")]
    try:
        for node in nodes:
            node.start()
        config = config_file(tmp_path, pg_url)

        def listed() -> dict[str, dict[str, object]]:
            _, out = status(capsys, config, "--json")
            return {node["name"]: node for node in json.loads(out)["nodes"] or []}

        roles = ["back_office.intake", "back_office.outbox", "front"]
        both = wait_until(
            lambda: (
                (found := listed())
                and all(found.get(n.name, {}).get("roles") == roles for n in nodes)
                and found
            ),
            timeout=60,
            what="both nodes alive with their three processes",
        )
        assert {both[n.name]["state"] for n in nodes} == {"alive"}
        held = wait_until(
            lambda: [h for node in listed().values() for h in node["holds"]],  # type: ignore[attr-defined]
            what="a node holding a periodic job",
        )
        assert any(h.startswith("job sweep") for h in held), held
        nodes[1].kill()
        gone = wait_until(
            lambda: (found := listed())["node-b"]["state"] == "gone" and found,
            timeout=30,
            what="node-b judged gone",
        )
        assert gone["node-a"]["state"] == "alive"
        # node-b ran on this machine: its processes are seen gone at node-a's next heartbeat
        assert gone["node-b"]["gone_reason"] == "its process exited"
        _, text = status(capsys, config)
        assert "  node-a: alive" in text and "  node-b: gone (its process exited" in text
    finally:
        for node in nodes:
            node.stop()
