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

    timeline = subparsers.add_parser(
        "timeline", help="the KMs' session events of a network (e.g. one left by demo --keep)")
    timeline.add_argument("--state-dir", type=Path, required=True)
    timeline.add_argument("--since", type=float, default=None,
                          help="only events at or after this epoch time (default: all)")
    timeline.add_argument("--session", default=None, help="only this session ID")
    timeline.add_argument("--json", action="store_true",
                          help="the events as JSON lines (t in epoch seconds)")
    timeline.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                          help="draw the timeline like the paper's Fig. 4 (matplotlib)")
    timeline.set_defaults(func=_timeline)


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


def _timeline(args: argparse.Namespace) -> int:
    import json

    from qkdn.demo import node_dirs
    from qkdn.event_log import collect_events
    from qkdn.state_files import StateDir
    from qkdn.timeline import format_timeline

    state = StateDir(args.state_dir.resolve())
    if not state.topology.exists():
        print(f"qkdn timeline: no network in {state.root}")
        return 1
    events = collect_events(node_dirs(state), since=args.since)
    if args.session:
        events = [e for e in events if (e.session or "").lower() == args.session.lower()]
    if not events:
        print("no events recorded")
        return 0
    if args.json:
        for event in events:
            print(json.dumps(event.to_json(), separators=(",", ":")))
    t0 = min((e.t for e in events if e.session is not None), default=events[0].t)
    if not args.json:
        for line in format_timeline(events, t0, f"the first session event, {t0:.3f} epoch s"):
            print(line)
    if args.plot is not None:
        from qkdn.timeline_plot import plot_timeline

        plot_timeline(events, t0, args.plot, xlabel="seconds from the first session event")
        print(f"timeline plot: {args.plot}")
    return 0
