"""``qkdn demo``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the paper's network end to end")
    demo.add_argument("--topology", type=Path, default=None,
                      help="topology file (default topologies/paper.yaml)")
    demo.add_argument("--state-dir", type=Path, default=None,
                      help="state directory (default: a temporary one)")
    demo.add_argument("--keep", action="store_true", help="leave the network running")
    demo.add_argument("--report", type=Path, default=None,
                      help="write the scenario's report (pairs, paths, key ids, every KM's "
                           "events; never key material) as JSON")
    demo.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                      help="draw the KMs' event timeline like the paper's Fig. 4 "
                           "(needs matplotlib: the [plot] extra)")
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from qkdn.demo import PAPER_TOPOLOGY, run_demo

    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ModuleNotFoundError:
            print("qkdn demo: --plot needs matplotlib (pip install 'qkdn[plot]')")
            return 2

    return run_demo(topology=args.topology or PAPER_TOPOLOGY, state_dir=args.state_dir,
                    keep=args.keep, report_path=args.report, plot_path=args.plot)
