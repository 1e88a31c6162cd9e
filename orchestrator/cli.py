"""``qkdn orchestrator``: run the orchestrator (REST API, dashboard, metrics)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.nbi_client import NbiEndpoint
from qkdn.errors import QkdnError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "orchestrator", help="north-bound REST API (ETSI 018 shapes) and dashboard")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="network state directory (controller endpoint, token, twin)")
    parser.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="listen port (default ephemeral)")
    parser.add_argument("--token-file", type=Path, default=None,
                        help="operator bearer token file (default DIR/orchestrator/token)")
    parser.add_argument("--nbi-host", default=None, help="controller NETCONF NBI host")
    parser.add_argument("--nbi-port", type=int, default=None, help="controller NETCONF NBI port")
    parser.add_argument("--nbi-user", default="orchestrator")
    parser.add_argument("--nbi-password-file", type=Path, default=None)
    parser.add_argument("--tls", action="store_true", default=None,
                        help="serve HTTPS with certificates of the network CA (with --state-dir;"
                             " also issues DIR/pki/operator/operator.pem for operators)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS with this cert")
    parser.add_argument("--tls-key", type=Path, default=None)
    parser.add_argument("--tls-ca", type=Path, default=None,
                        help="CA of operator client certificates (the network CA)")
    parser.set_defaults(func=cmd_orchestrator)


def cmd_orchestrator(args: argparse.Namespace) -> int:
    from orchestrator.daemon import resolve_settings, run

    try:
        nbi = None
        if args.nbi_host or args.nbi_port:
            if not (args.nbi_host and args.nbi_port and args.nbi_password_file):
                raise QkdnError("--nbi-host, --nbi-port and --nbi-password-file go together")
            nbi = NbiEndpoint(args.nbi_host, args.nbi_port, args.nbi_user,
                              args.nbi_password_file.read_text().strip())
        settings = resolve_settings(state_dir=args.state_dir, host=args.host, port=args.port,
                                    nbi=nbi, token_file=args.token_file,
                                    tls_cert=args.tls_cert, tls_key=args.tls_key,
                                    tls_ca=args.tls_ca, tls=args.tls)
        return run(settings)
    except (QkdnError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
