"""``intaked status [--json]``: the readiness checks of ``/readyz``, the main figures of
``/metrics`` and the nodes sharing the store (intaked/metrics/nodes.py), for an operator without
Prometheus. Exit code 0 when ready, 1 when a check failed (:data:`EXIT_NOT_READY`)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from intaked.commands.shared import open_engine, print_json
from intaked.config import Settings
from intaked.metrics.figures import StoreFigures, read_figures
from intaked.metrics.nodes import NodeView, read_nodes
from intaked.metrics.readiness import Readiness, check_readiness
from intaked.store.engine import read_snapshot
from intaked.store.types import utcnow

EXIT_READY = 0
EXIT_NOT_READY = 1


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    status = sub.add_parser(
        "status", parents=[config_parent], help="readiness checks and main figures (exit 1: not ready)"
    )
    status.add_argument("--json", action="store_true", help="JSON output")


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_engine(settings)
    try:
        readiness = check_readiness(settings, engine)
        figures = nodes = None
        if readiness.checks[1].passed:
            figures = read_figures(engine)
            with read_snapshot(engine).connect() as conn:
                nodes = read_nodes(conn, utcnow())
    finally:
        engine.dispose()
    if args.json:
        print_json(
            {
                **readiness.as_json(),
                "figures": _figures_json(figures),
                "nodes": None if nodes is None else [asdict(node) for node in nodes],
            }
        )
    else:
        _print(readiness, figures)
        _print_nodes(nodes)
    return EXIT_READY if readiness.ready else EXIT_NOT_READY


def _print_nodes(nodes: list[NodeView] | None) -> None:
    if not nodes:
        return
    print("nodes:")
    for node in nodes:
        age = (
            "" if node.heartbeat_age_seconds is None else f", heartbeat {node.heartbeat_age_seconds:.0f}s ago"
        )
        if node.state == "gone":
            print(f"  {node.name}: gone ({node.gone_reason or 'stopped'}){age}")
            continue
        version = f" {'/'.join(node.versions)}" if node.versions else ""
        holds = f"; holds {', '.join(node.holds)}" if node.holds else ""
        print(f"  {node.name}: {node.state}{version} ({', '.join(node.roles)}){age}{holds}")


def _figures_json(figures: StoreFigures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    plain = asdict(figures)
    for key, value in plain.items():
        if isinstance(value, dict):  # tuple keys, e.g. (channel, state), as "smtp/done"
            plain[key] = {"/".join(k): n for k, n in value.items()}
    return plain


def _print(readiness: Readiness, figures: StoreFigures | None) -> None:
    print("ready" if readiness.ready else f"NOT READY: {', '.join(readiness.failed())}")
    for check in readiness.checks:
        print(f"  [{'ok' if check.passed else 'FAIL'}] {check.name}: {check.detail}")
    if figures is None:
        return
    print(
        f"ledger: {figures.ledger_backlog} waiting (oldest {figures.ledger_oldest_age:.0f}s), "
        f"{figures.quarantined} quarantined"
    )
    unsent = sum(n for (_, state), n in figures.outbox_rows.items() if state in ("pending", "sending"))
    print(f"outbox: {unsent} waiting (oldest {figures.outbox_oldest_age:.0f}s)")
    print(f"tickets: {_joined(figures.tickets)}")
    print(f"pages: {_joined(figures.pages)}")
    print(f"SLA breaches: {_joined(figures.sla_breaches)}")
    for mailbox in figures.mailboxes:
        age = "never" if mailbox.poll_age_seconds is None else f"{mailbox.poll_age_seconds:.0f}s ago"
        error = f"; error: {mailbox.last_error}" if mailbox.last_error else ""
        print(f"IMAP {mailbox.name}: last poll {age}{error}")


def _joined(counts: dict[tuple[str, ...], int]) -> str:
    return ", ".join(f"{'/'.join(key)} {n}" for key, n in sorted(counts.items()) if n) or "none"
