"""The controller's commands: ``qkdn controller`` (the process), ``qkdn sessions``,
``qkdn topology`` and ``qkdn users ...`` (the user/SLA database, ``DIR/controller/users.sqlite``).

When the user database does not exist yet it is created and loaded from ``DIR/topology.yaml``
(the copy ``qkdn up`` keeps), so the operator sees the topology's users right away.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC
from pathlib import Path

from qkdn.errors import QkdnError
from sdn_controller.user_db import ANY_PEER, FallbackPolicy, SlaProfile, UserDb

USERS_DB = Path("controller") / "users.sqlite"


def users_db_path(state_dir: Path) -> Path:
    return state_dir / USERS_DB


def open_users_db(state_dir: Path) -> UserDb:
    """The network's user DB; created (and loaded from the topology copy) if missing."""
    path = users_db_path(state_dir)
    fresh = not path.exists()
    db = UserDb.open(path)
    topology_file = state_dir / "topology.yaml"
    if fresh and topology_file.exists():
        from qkdn.topology import load_topology

        db.load_topology(load_topology(topology_file))
    return db


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    ctl = subparsers.add_parser("controller", help="run the SDN controller of a network "
                                                   "(started by 'qkdn up')")
    ctl.add_argument("--state-dir", required=True, type=Path)
    ctl.add_argument("--qber-alarm", type=float, default=None,
                     help="QBER above which a link is flagged (default 0.11; QKDN_QBER_ALARM)")
    ctl.add_argument("--poll-interval", type=float, default=None,
                     help="seconds between gets of each agent (default 5; QKDN_POLL_INTERVAL)")
    ctl.add_argument("--peer-wait", type=float, default=None,
                     help="seconds a session waits for its peer (default 30; QKDN_PEER_WAIT)")
    ctl.add_argument("--nbi-host", default=None,
                     help="address of the north-bound NETCONF server (default 127.0.0.1; "
                          "QKDN_NBI_HOST)")
    ctl.add_argument("--nbi-port", type=int, default=None,
                     help="its port (default: kept from the last run, else ephemeral; "
                          "QKDN_NBI_PORT)")
    ctl.add_argument("--southbound-transport", choices=("auto", "libssh", "paramiko"),
                     default=None,
                     help="SSH under the agents' NETCONF sessions (default auto: libssh when "
                          "ssh-python is installed, else paramiko; QKDN_SOUTHBOUND_TRANSPORT)")
    ctl.set_defaults(func=_run_controller)

    nbi = subparsers.add_parser("nbi", help="where the controller's north-bound NETCONF "
                                            "server listens, and how to reach it")
    nbi.add_argument("--state-dir", required=True, type=Path)
    nbi.add_argument("--json", action="store_true", help="host, port, username, password")
    nbi.set_defaults(func=_nbi)

    sessions = subparsers.add_parser("sessions", help="sessions with their paths and state")
    sessions.add_argument("--state-dir", required=True, type=Path)
    sessions.add_argument("--all", action="store_true", help="include terminated sessions")
    sessions.add_argument("--json", action="store_true")
    sessions.set_defaults(func=_sessions)

    topo = subparsers.add_parser("topology", help="nodes and links with their live metrics")
    topo.add_argument("--state-dir", required=True, type=Path)
    topo.add_argument("--json", action="store_true")
    topo.set_defaults(func=_topology)

    users = subparsers.add_parser("users", help="users, applications and SLA profiles "
                                                "(controller's user database)")
    users.add_argument("--state-dir", required=True, type=Path)
    users.add_argument("--json", action="store_true", help="machine-readable output")
    sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="users with SLA, peers, state and applications")
    p.set_defaults(func=_list_users)

    p = sub.add_parser("add", help="add (or with --replace update) a user")
    p.add_argument("name")
    p.add_argument("--sla", required=True)
    p.add_argument("--peer", action="append", default=[],
                   help="user this user's applications may reach (repeatable; default any)")
    p.add_argument("--app", action="append", default=[], metavar="SAE_ID@NODE",
                   help="bind an application (SAE id) on a node to the user (repeatable)")
    p.add_argument("--replace", action="store_true")
    p.set_defaults(func=_add_user)

    p = sub.add_parser("revoke", help="revoke a user: its applications are refused from now on")
    p.add_argument("name")
    p.add_argument("--reason", default="revoked by operator")
    p.set_defaults(func=_revoke_user)

    p = sub.add_parser("reinstate", help="undo a revocation")
    p.add_argument("name")
    p.set_defaults(func=_reinstate_user)

    p = sub.add_parser("sla-list", help="SLA profiles")
    p.set_defaults(func=_list_slas)

    p = sub.add_parser("sla-add", help="add (or with --replace update) an SLA profile")
    p.add_argument("name")
    p.add_argument("--max-bps", type=int, required=True)
    p.add_argument("--min-bps", type=int, default=0)
    p.add_argument("--max-priority", type=int, default=0)
    p.add_argument("--max-sessions", type=int, default=16)
    p.add_argument("--idle-timeout", type=int, default=60, help="seconds")
    p.add_argument("--no-lower-rate", action="store_true",
                   help="refuse instead of admitting at a lower rate")
    p.add_argument("--fallback", choices=[f.value for f in FallbackPolicy],
                   default=FallbackPolicy.QKD_ONLY.value)
    p.add_argument("--replace", action="store_true")
    p.set_defaults(func=_add_sla)


def _run(args: argparse.Namespace, action) -> int:  # type: ignore[no-untyped-def]
    try:
        db = open_users_db(args.state_dir)
    except QkdnError as exc:
        print(f"qkdn users: {exc}", file=sys.stderr)
        return 1
    try:
        return int(action(db) or 0)
    except QkdnError as exc:
        print(f"qkdn users: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()


def _list_users(args: argparse.Namespace) -> int:
    def action(db: UserDb) -> int:
        users = db.users()
        apps = {u.name: [a for a in db.applications(u.name)] for u in users}
        if args.json:
            print(json.dumps([{**asdict(u), "applications": [asdict(a) for a in apps[u.name]]}
                              for u in users], indent=2))
            return 0
        print(f"{'user':<16}{'sla':<12}{'state':<10}{'peers':<20}applications")
        for u in users:
            state = "revoked" if u.revoked else "active"
            app_text = ", ".join(f"{a.sae_id}@{a.node_name}" + (" (revoked)" if a.revoked else "")
                                 for a in apps[u.name]) or "-"
            print(f"{u.name:<16}{u.sla:<12}{state:<10}{','.join(u.allowed_peers):<20}{app_text}")
        return 0
    return _run(args, action)


def _add_user(args: argparse.Namespace) -> int:
    bindings = []
    for spec in args.app:
        sae_id, sep, node = spec.rpartition("@")
        if not sep or not sae_id or not node:
            print(f"qkdn users add: --app {spec!r}: expected SAE_ID@NODE", file=sys.stderr)
            return 2

        bindings.append((sae_id, node))

    def action(db: UserDb) -> int:
        with db.db.transaction():
            user = db.add_user(args.name, args.sla, tuple(args.peer) or (ANY_PEER,),
                               replace=args.replace)
            for sae_id, node in bindings:
                db.add_application(sae_id, user.name, node, replace=args.replace)
        print(f"user {user.name} ({user.sla})" +
              (f" with {', '.join(s for s, _ in bindings)}" if bindings else ""))
        return 0
    return _run(args, action)


def _revoke_user(args: argparse.Namespace) -> int:
    def action(db: UserDb) -> int:
        from datetime import datetime

        db.revoke_user(args.name, args.reason,
                       at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        print(f"user {args.name} revoked")
        return 0
    return _run(args, action)


def _reinstate_user(args: argparse.Namespace) -> int:
    def action(db: UserDb) -> int:
        db.reinstate_user(args.name)
        print(f"user {args.name} reinstated")
        return 0
    return _run(args, action)


def _list_slas(args: argparse.Namespace) -> int:
    def action(db: UserDb) -> int:
        slas = db.slas()
        if args.json:
            print(json.dumps([asdict(s) for s in slas], indent=2))
            return 0
        print(f"{'sla':<14}{'max_bps':>10}{'min_bps':>10}{'max_prio':>9}{'max_sess':>9}"
              f"{'idle_s':>8}  lower-rate  fallback")
        for s in slas:
            print(f"{s.name:<14}{s.max_bps:>10}{s.min_bps:>10}{s.max_priority:>9}"
                  f"{s.max_sessions:>9}{s.idle_timeout_s:>8}  "
                  f"{'yes' if s.allow_lower_rate else 'no':<10}  {s.fallback.value}")
        return 0
    return _run(args, action)


def _add_sla(args: argparse.Namespace) -> int:
    def action(db: UserDb) -> int:
        sla = SlaProfile(args.name, args.max_bps, args.min_bps, args.max_priority,
                         args.max_sessions, args.idle_timeout, not args.no_lower_rate,
                         FallbackPolicy(args.fallback))
        db.add_sla(sla, replace=args.replace)
        print(f"SLA profile {sla.name} stored")
        return 0
    return _run(args, action)


def _nbi(args: argparse.Namespace) -> int:
    """Print the north-bound server's endpoint (``DIR/controller/nbi.json``)."""
    from sdn_controller.daemon import CONTROLLER_DIR, NBI_FILE

    path = args.state_dir / CONTROLLER_DIR / NBI_FILE
    try:
        nbi = json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"qkdn nbi: no north-bound server recorded in {path} (is the controller "
              "running?)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(nbi, indent=2))
        return 0
    print(f"NETCONF over SSH at {nbi['host']}:{nbi['port']} (user {nbi['username']})")
    print(f"netconf-console2 --host {nbi['host']} --port {nbi['port']} -u {nbi['username']} "
          f"-p '{nbi['password']}' --get -x /qkd_network/qkd_links/svc_links")
    return 0


def _run_controller(args: argparse.Namespace) -> int:
    from sdn_controller.daemon import resolve_settings, run_controller

    try:
        settings = resolve_settings(args.state_dir.resolve(), qber_alarm=args.qber_alarm,
                                    poll_interval_s=args.poll_interval,
                                    peer_wait_s=args.peer_wait, nbi_host=args.nbi_host,
                                    nbi_port=args.nbi_port,
                                    southbound_transport=args.southbound_transport)
        return run_controller(settings)
    except QkdnError as exc:
        print(f"qkdn controller: {exc}", file=sys.stderr)
        return 1


def key_column(session: dict) -> str:
    """``policy:mode(kind=keys,...)`` of a session row, e.g. ``hybrid:qkd(hybrid=12,qkd=40)``
    (ADR 0009); one token, so the path stays the last column."""
    delivered = session.get("delivered") or {}
    counts = ",".join(f"{p}={d['keys']}" for p, d in sorted(delivered.items()))
    text = f"{session.get('fallback_policy', 'qkd-only')}:{session.get('key_mode', 'qkd')}"
    return f"{text}({counts})" if counts else text


def _sessions(args: argparse.Namespace) -> int:
    path = args.state_dir / "controller" / "sessions.json"
    if not path.exists():
        print(f"qkdn sessions: no controller state in {path.parent} (is the network up?)",
              file=sys.stderr)
        return 1
    data = json.loads(path.read_text())
    shown = [s for s in data["sessions"] if args.all or s["state"] != "terminated"]
    if args.json:
        print(json.dumps({**data, "sessions": shown}, indent=2))
        return 0
    print(f"{'session':<38}{'state':<12}{'from':<18}{'to':<18}{'bit/s':>9}  "
          f"{'policy:keys(delivered)':<32}path")
    for s in shown:
        src = f"{s['initiator']['sae_id']}@{s['initiator']['node']}"
        dst = (f"{s['responder']['sae_id']}@{s['responder']['node']}" if s["responder"]
               else f"{s['peer_sae_id']} (waiting)")
        path_text = " | ".join("-".join(leg["nodes"]) for leg in s["paths"]) or "-"
        extra = f"  ({s['reason']})" if s["state"] == "terminated" and s["reason"] else ""
        keys = key_column(s)
        print(f"{s['session_id']:<38}{s['state']:<12}{src:<18}{dst:<18}{s['rate_bps']:>9}  "
              f"{keys:<32}{path_text}{extra}")
    return 0


def _topology(args: argparse.Namespace) -> int:
    import time as _time

    from sdn_controller.topology_db import TopologyDb

    path = args.state_dir / "controller" / "topology.sqlite"
    if not path.exists():
        print(f"qkdn topology: no topology database at {path} (is the network up?)",
              file=sys.stderr)
        return 1
    db = TopologyDb.open(path, clock=_time.time)
    try:
        nodes = db.nodes()
        names = {n.qkdn_id: n.name or n.qkdn_id for n in nodes}
        links = sorted(db.links(),
                       key=lambda lk: (names.get(lk.node_a, ""), names.get(lk.node_b, "")))
        if args.json:
            print(json.dumps({"nodes": [asdict(n) for n in nodes],
                              "links": [{**asdict(lk), "status": lk.status.value,
                                         "usable": lk.usable} for lk in links]}, indent=2))
            return 0
        print(f"{'node':<8}{'qkdn_id':<38}{'status':<11}location")
        for n in nodes:
            print(f"{n.name or '-':<8}{n.qkdn_id:<38}{n.status or '-':<11}{n.location or ''}")
        print()
        print(f"{'link':<10}{'status':<9}{'skr':>9}{'eskr':>9}{'qber':>8}{'stored':>10}  state")
        for lk in links:
            state = "usable" if lk.usable else (lk.down_reason or lk.flag_reason or "unusable")
            qber = f"{lk.qber:.4f}" if lk.qber is not None else "-"
            stored = str(lk.stored_bits) if lk.stored_bits is not None else "-"
            label = f"{names.get(lk.node_a, lk.node_a[:8])}-{names.get(lk.node_b, lk.node_b[:8])}"
            print(f"{label:<10}{lk.status.value:<9}{lk.skr:>9}{lk.eskr:>9}{qber:>8}{stored:>10}  "
                  f"{state}")
        return 0
    finally:
        db.close()
