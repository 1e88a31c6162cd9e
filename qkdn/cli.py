"""The ``qkdn`` command: one console script, a subcommand per daemon and tool.

Each plane contributes its subcommands from its own ``cli`` module through
``add_commands(subparsers)``; a subcommand's parser sets ``func`` to the callable that runs it
(returning the process exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: Modules that contribute subcommands, in help order.
COMMAND_MODULES = (
    "qkdn.bringup_cli",      # up, down, status, node
    "qkd_agent.cli",         # agent
    "kms.cli",               # km tools
    "sdn_controller.cli",    # controller, sessions, topology, users
    "orchestrator.cli",      # orchestrator
    "qkd_twin.cli",          # twin keyrate / postprocess, fault
    "qkdn.demo_cli",         # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qkdn", description="QKD network control plane and key management (ETSI 015/014/004)."
    )
    parser.add_argument("--log-level", default="WARNING",
                        help="logging level for this process (default WARNING)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that plane has no commands in this build yet
                continue
            raise
        module.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
