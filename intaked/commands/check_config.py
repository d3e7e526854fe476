"""``intaked check-config``: validate the settings and print them, secrets masked, with notes on
what they leave out (an open recipient list, routing that trusts nothing, unpaged priorities)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from intaked.commands.shared import print_json
from intaked.config import Settings, masked_dump
from intaked.paging.policy import missing_policies, missing_policy_reason
from intaked.routing.checks import config_notes


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    sub.add_parser("check-config", parents=[config_parent], help="validate and print the settings")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``args.config_source`` says where the settings came from (set by :mod:`intaked.cli`)."""
    print(f"# configuration from {args.config_source}: valid")
    sender = settings.outbound_mail.sender
    print(f"# From header: {sender.header_value()}  ({sender.readable()})")
    print_json(masked_dump(settings))
    if not settings.smtp_intake.recipients and settings.smtp_intake.enabled:
        print("# note: smtp_intake.recipients is empty: every recipient is accepted", file=sys.stderr)
    for note in config_notes(settings):
        print(f"# note: {note}", file=sys.stderr)
    for priority in missing_policies(settings):
        print(f"# warning: {missing_policy_reason(priority)}", file=sys.stderr)
    return 0
