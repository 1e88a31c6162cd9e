"""``qkdn km …`` operator tools.

* ``qkdn km serve --spec FILE`` — run one standalone KM process from a JSON spec (directory,
  TLS files, port, optional running config and a deterministic test key feed); the node
  runtime hosts the KM in-process instead, this is for isolated operation and crash tests.
* ``qkdn km store-levels --state-dir DIR`` — key-store levels of every link of a node's KM,
  read from its SQLite files (safe while the KM runs).
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the KM's modules load only when a km command runs (qkdn starts fast)
    from kms.key_manager import KeyManager


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    km = subparsers.add_parser("km", help="key manager tools")
    sub = km.add_subparsers(dest="km_command", metavar="KM_COMMAND")
    serve = sub.add_parser("serve", help="run one standalone KM from a JSON spec")
    serve.add_argument("--spec", required=True, type=Path)
    serve.set_defaults(func=run_serve)
    levels = sub.add_parser("store-levels", help="key-store levels of a node's KM")
    levels.add_argument("--state-dir", required=True, type=Path,
                        help="the node's state directory (holding km/)")
    levels.set_defaults(func=run_store_levels)


def km_from_spec(spec: dict) -> KeyManager:
    from kms.directory import Directory, NodeEntry
    from kms.https_server import TlsFiles
    from kms.key_manager import KeyManager, KmConfig

    d = spec["directory"]
    directory = Directory(
        saes=d["saes"],
        nodes={n: NodeEntry(n, e["qkdn_id"], e.get("relay_url", "")) for n, e in d["nodes"].items()},
        links=d["links"])
    tls = TlsFiles(Path(spec["tls"]["cert"]), Path(spec["tls"]["key"]), Path(spec["tls"]["ca"]))
    config = KmConfig(require_controller=bool(spec.get("require_controller", False)),
                      fault_delays=spec.get("fault_delays", {}),
                      resolve_interval_s=float(spec.get("resolve_interval_s", 1.0)),
                      relay_batch=int(spec.get("relay_batch", KmConfig.relay_batch)),
                      reserve_batch=int(spec.get("reserve_batch", KmConfig.reserve_batch)),
                      relay_ahead_low_water=int(spec.get("relay_ahead_low_water", 0)),
                      relay_ahead_max_keys=int(spec.get("relay_ahead_max_keys", 0)),
                      tombstone_retention_s=float(spec.get(
                          "tombstone_retention_s", KmConfig.tombstone_retention_s)),
                      tombstone_prune_interval_s=float(spec.get(
                          "tombstone_prune_interval_s", KmConfig.tombstone_prune_interval_s)))
    return KeyManager(spec["node"], spec["qkdn_id"], Path(spec["state_dir"]), directory, tls,
                      config=config)


def run_serve(args: argparse.Namespace) -> int:
    from kms.local_network import test_block

    spec = json.loads(args.spec.read_text())
    km = km_from_spec(spec)
    if spec.get("running"):
        km.apply_running_config(spec["running"])
    for qkdl_id, feed in spec.get("feed", {}).items():
        for index in range(int(feed["blocks"])):
            km.deliver(qkdl_id, index, test_block(qkdl_id, index, int(feed["size"])))
    km.start(port=int(spec.get("port", 0)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"ready": True, "url": km.base_url}), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    km.stop()
    return 0


def run_store_levels(args: argparse.Namespace) -> int:
    links = sorted((args.state_dir / "km" / "links").glob("*.sqlite"))
    if not links:
        print(f"no key stores under {args.state_dir / 'km' / 'links'}", file=sys.stderr)
        return 1
    print(f"{'qkdl_id':38} {'low half B':>12} {'high half B':>12} {'consumed B':>12} {'blocks':>7}")
    for path in links:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        halves = dict(conn.execute(
            "SELECT half, COALESCE(SUM(LENGTH(data)),0) FROM ranges GROUP BY half").fetchall())
        consumed = conn.execute("SELECT value FROM counters WHERE name='consumed_bytes'").fetchone()
        blocks = conn.execute("SELECT COUNT(*) FROM blocks").fetchone()[0]
        conn.close()
        print(f"{path.stem:38} {halves.get('low', 0):>12} {halves.get('high', 0):>12} "
              f"{consumed[0] if consumed else 0:>12} {blocks:>7}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kms.cli")
    sub = parser.add_subparsers(dest="command")
    add_commands(sub)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
