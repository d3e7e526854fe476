"""``intaked run``: the daemon, in the foreground."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from intaked.config import Settings


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    sub.add_parser("run", parents=[config_parent], help="run the daemon in the foreground")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from intaked.daemon import run_daemon
    from intaked.memory import tune_allocator

    tune_allocator()
    return asyncio.run(run_daemon(settings))
