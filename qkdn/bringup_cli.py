"""``qkdn up``, ``qkdn down``, ``qkdn status`` and ``qkdn node``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qkdn.errors import QkdnError
from qkdn.state_files import StateDir


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="bring a topology up as processes on loopback")
    up.add_argument("topology", type=Path, help="topology file (YAML or TOML)")
    up.add_argument("--state-dir", required=True, type=Path)
    up.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for every element (default 60)")
    up.add_argument("--password", help="NETCONF password for the agents (default: random)")
    up.add_argument("--no-controller", dest="controller", action="store_false",
                    help="no SDN controller: adjacent SAEs are served directly, multi-hop "
                         "paths are provisioned by an operator over NETCONF")
    up.set_defaults(func=_up)

    down = subparsers.add_parser("down", help="stop a network brought up by 'qkdn up'")
    down.add_argument("--state-dir", required=True, type=Path)
    down.set_defaults(func=_down)

    status = subparsers.add_parser("status", help="processes and endpoints of a network")
    status.add_argument("--state-dir", required=True, type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)

    node = subparsers.add_parser("node", help="run one node process (agent, key manager, "
                                              "QKD modules); started by the supervisor")
    node.add_argument("--config", required=True, type=Path, help="DIR/nodes/<name>/node.json")
    node.set_defaults(func=_node)


def _up(args: argparse.Namespace) -> int:
    from qkdn.bringup import bring_up

    state = StateDir(args.state_dir.resolve())
    try:
        endpoints = bring_up(args.topology, state, timeout=args.timeout, password=args.password,
                             controller=args.controller)
    except QkdnError as exc:
        print(f"qkdn up: {exc}", file=sys.stderr)
        return 1
    print(f"network '{endpoints['topology']}' is up; endpoints in {state.endpoints}")
    for name, node in endpoints["nodes"].items():
        nc = node["netconf"]
        print(f"  node {name:>6}  {node['qkdn_id']}  netconf {nc['host']}:{nc['port']}  "
              f"km {node['km']}")
    if "controller" in endpoints:
        print(f"  controller pid {endpoints['controller']['pid']}  "
              f"log {endpoints['controller']['log']}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from qkdn.bringup import bring_down

    state = StateDir(args.state_dir.resolve())
    killed = bring_down(state)
    if killed:
        print(f"stopped; had to kill pids {', '.join(map(str, killed))}")
    else:
        print("stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    from qkdn.bringup import network_status

    status = network_status(StateDir(args.state_dir.resolve()))
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    sup = status["supervisor"]
    print(f"supervisor pid {sup['pid']}  {'alive' if sup['alive'] else 'NOT RUNNING'}"
          f"  ({sup['state']})")
    print(f"{'element':<14}{'kind':<14}{'pid':>8}  {'alive':<6}{'restarts':>9}  endpoint")
    for row in status["processes"]:
        print(f"{row['name']:<14}{row['kind']:<14}{row['pid'] or '-':>8}  "
              f"{'yes' if row['alive'] else 'no':<6}{row['restarts']:>9}  {row['endpoint']}")
    return 0 if sup["alive"] else 1


def _node(args: argparse.Namespace) -> int:
    from qkdn.node_runtime import run_node

    return run_node(args.config)
