"""``qkdn twin ...`` (link model, post-processing) and ``qkdn fault ...`` (fault injection).

Thin shell: argument parsing and printing only; the work is in ``physics``,
``postprocessing.evaluation`` and ``faults``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path

from qkd_twin.errors import TwinError
from qkd_twin.faults import FaultKind, append_fault, fault_file, fault_state_at, read_faults
from qkd_twin.physics import PRESETS, DecoyModel, LinkParameters, evaluate, preset
from qkdn.errors import QkdnError

#: ``--option`` → LinkParameters field, for overriding a preset.
PARAMETER_OPTIONS = {
    "alpha": "alpha_db_per_km", "eta-bob": "eta_bob", "y0": "y0", "e-d": "e_d",
    "f-ec": "f_ec", "q": "q", "clock-hz": "clock_hz", "extra-loss-db": "extra_loss_db",
    "eavesdrop-fraction": "eavesdrop_fraction", "decoy-nu": "decoy_nu",
}

#: Node faults are carried out by the supervisor of the running network (``qkdn up``):
#: the integrator provides these callables ``(state_dir: Path, node: str) -> str``.
NODE_FAULT_HOOKS = {"node-kill": ("qkdn.supervisor", "kill_node"),
                    "node-restart": ("qkdn.supervisor", "restart_node")}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``twin`` and ``fault``."""
    twin = subparsers.add_parser("twin", help="digital twin: link model and post-processing")
    twin_sub = twin.add_subparsers(dest="twin_command", metavar="TWIN_COMMAND")
    twin.set_defaults(func=lambda args: _help(twin))

    keyrate = twin_sub.add_parser(
        "keyrate", help="secret key rate, QBER, optimal mu and PLOB bound of a link")
    keyrate.add_argument("--length-km", type=float, help="fiber length (km)")
    keyrate.add_argument("--preset", default="reference", choices=sorted(PRESETS))
    keyrate.add_argument("--decoy", default=DecoyModel.INFINITE.value,
                         choices=[d.value for d in DecoyModel])
    for option, field in PARAMETER_OPTIONS.items():
        keyrate.add_argument(f"--{option}", type=float, dest=field, default=None,
                             help=f"override {field}")
    keyrate.add_argument("--json", action="store_true", help="machine-readable output")
    keyrate.add_argument("--sweep", action="store_true",
                         help="table of the key rate against distance")
    keyrate.add_argument("--from-km", type=float, default=0.0)
    keyrate.add_argument("--to-km", type=float, default=300.0)
    keyrate.add_argument("--step-km", type=float, default=10.0)
    keyrate.add_argument("--plot", type=Path, help="with --sweep: write a PNG plot here")
    keyrate.set_defaults(func=cmd_keyrate)

    post = twin_sub.add_parser(
        "postprocess", help="run error correction + verification + privacy amplification")
    post.add_argument("--qber", type=float, required=True, help="channel QBER (fraction)")
    post.add_argument("--bits", type=int, required=True, help="sifted bits to process")
    post.add_argument("--frame-bits", type=int, default=100_000)
    post.add_argument("--seed", type=int, default=1)
    post.add_argument("--json", action="store_true")
    post.set_defaults(func=cmd_postprocess)

    fault = subparsers.add_parser("fault", help="inject faults and attacks into a running network")
    fault.add_argument("--state-dir", required=True, type=Path,
                       help="state directory of the network (qkdn up --state-dir)")
    fault_sub = fault.add_subparsers(dest="fault_command", metavar="FAULT")
    fault.set_defaults(func=lambda args: _help(fault))
    for name, kind, value_help in (
        ("link-down", FaultKind.LINK_DOWN, None), ("link-up", FaultKind.LINK_UP, None),
        ("loss", FaultKind.EXTRA_LOSS, "extra loss in dB (0 removes it)"),
        ("eavesdrop", FaultKind.EAVESDROP, "fraction of pulses intercepted (0 removes it)"),
        ("clear", FaultKind.CLEAR, None),
    ):
        sub = fault_sub.add_parser(name, help=f"{kind.value} on the link between two nodes")
        sub.add_argument("node_a")
        sub.add_argument("node_b")
        if value_help:
            sub.add_argument("value", type=float, help=value_help)
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(func=cmd_fault, fault_kind=kind)
    show = fault_sub.add_parser("show", help="faults recorded on a link and its current state")
    show.add_argument("node_a")
    show.add_argument("node_b")
    show.set_defaults(func=cmd_fault_show)
    for name in NODE_FAULT_HOOKS:
        sub = fault_sub.add_parser(name, help=f"{name.split('-')[1]} a node's process")
        sub.add_argument("node")
        sub.set_defaults(func=cmd_node_fault, node_action=name)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def link_parameters_from_args(args: argparse.Namespace, length_km: float) -> LinkParameters:
    overrides = {field: getattr(args, field) for field in PARAMETER_OPTIONS.values()
                 if getattr(args, field, None) is not None}
    return preset(args.preset, length_km, **overrides)


def keyrate_json(params: LinkParameters, decoy: DecoyModel) -> dict:
    """The keyrate result; an infinite PLOB bound (zero length) is ``None`` in JSON."""
    perf = evaluate(params, decoy)
    plob = perf.plob_bps if math.isfinite(perf.plob_bps) else None
    return {"skr_bps": perf.skr_bps, "qber": perf.qber, "mu": perf.mu, "plob_bps": plob}


def format_rate(bps: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.3f} {unit}"
    return f"{bps:.2f} bit/s"


def cmd_keyrate(args: argparse.Namespace) -> int:
    decoy = DecoyModel(args.decoy)
    try:
        if args.sweep:
            return _sweep(args, decoy)
        if args.length_km is None:
            return _error("--length-km is required (or use --sweep)")
        params = link_parameters_from_args(args, args.length_km)
        result = keyrate_json(params, decoy)
    except TwinError as exc:
        return _error(str(exc))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"link: preset {args.preset}, {params.length_km:g} km, decoys {decoy.value}")
        print(f"secret key rate  {format_rate(result['skr_bps'])}")
        print(f"QBER             {100 * result['qber']:.3f} %")
        print(f"optimal mu       {result['mu']:.3f}")
        plob = result["plob_bps"]
        print(f"PLOB bound       {'unbounded' if plob is None else format_rate(plob)}")
    return 0


def _sweep(args: argparse.Namespace, decoy: DecoyModel) -> int:
    if args.step_km <= 0 or args.to_km < args.from_km:
        return _error("need --step-km > 0 and --to-km >= --from-km")
    count = int((args.to_km - args.from_km) / args.step_km + 1e-9) + 1
    lengths = [args.from_km + i * args.step_km for i in range(count)]
    rows = [{"length_km": length,
             **keyrate_json(link_parameters_from_args(args, length), decoy)}
            for length in lengths]
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'L (km)':>8} {'mu':>6} {'QBER %':>8} {'skr (bit/s)':>13} {'PLOB (bit/s)':>13}")
        for r in rows:
            plob = r["plob_bps"] if r["plob_bps"] is not None else math.inf
            print(f"{r['length_km']:8.1f} {r['mu']:6.3f} {100 * r['qber']:8.3f} "
                  f"{r['skr_bps']:13.4g} {plob:13.4g}")
    if args.plot:
        from qkd_twin.keyrate_plot import plot_keyrate
        plot_keyrate({args.preset: link_parameters_from_args(args, 0.0)}, lengths, args.plot,
                     decoy)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def cmd_postprocess(args: argparse.Namespace) -> int:
    from qkd_twin.postprocessing.evaluation import evaluate_postprocessing
    try:
        report = evaluate_postprocessing(args.qber, args.bits, frame_bits=args.frame_bits,
                                         seed=args.seed)
    except TwinError as exc:
        return _error(str(exc))
    summary = report.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        eff = summary["efficiency"]
        print(f"frames           {report.frames} x <= {args.frame_bits} bits, QBER {args.qber}")
        print(f"efficiency f     {'n/a' if eff is None else f'{eff:.3f}'}")
        print(f"EC throughput    {format_rate(summary['throughput_bps'])}")
        print(f"PA throughput    {format_rate(report.pa_throughput_bps)}")
        print(f"leaked bits      {summary['leaked_bits']}")
        print(f"final key bits   {summary['final_key_bits']}")
        print(f"frame errors     {summary['frame_errors']}")
    return 0


def _check_network(state_dir: Path, nodes: list[str]) -> str | None:
    """A clear message when DIR is not a network's state dir or the nodes are unknown."""
    if not state_dir.is_dir():
        return f"state directory {state_dir} does not exist"
    endpoints = state_dir / "endpoints.json"
    if not endpoints.exists():
        return f"{endpoints} not found: is a network up in {state_dir}?"
    try:
        known = json.loads(endpoints.read_text()).get("nodes")
    except (OSError, json.JSONDecodeError) as exc:
        return f"cannot read {endpoints}: {exc}"
    if isinstance(known, dict):
        missing = [n for n in nodes if n not in known]
        if missing:
            return f"unknown node(s) {', '.join(missing)}; known: {', '.join(sorted(known))}"
    if len(nodes) == 2:
        return _check_link(state_dir / "topology.yaml", nodes[0], nodes[1])
    return None


def _check_link(topology_path: Path, node_a: str, node_b: str) -> str | None:
    """A message when the network's topology copy has no physical link between the nodes."""
    if not topology_path.exists():
        return None
    import yaml
    try:
        raw = yaml.safe_load(topology_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return f"cannot read {topology_path}: {exc}"
    links = raw.get("links") if isinstance(raw, dict) else None
    if not isinstance(links, list):
        return None
    pairs = {frozenset((str(link.get("a")), str(link.get("b")))) for link in links
             if isinstance(link, dict)}
    if frozenset((node_a, node_b)) not in pairs:
        return f"no physical link between {node_a} and {node_b} in {topology_path}"
    return None


def cmd_fault(args: argparse.Namespace) -> int:
    problem = _check_network(args.state_dir, [args.node_a, args.node_b])
    if problem:
        return _error(problem)
    try:
        record = append_fault(args.state_dir, args.node_a, args.node_b, args.fault_kind,
                              getattr(args, "value", None))
    except TwinError as exc:
        return _error(str(exc))
    if args.json:
        print(json.dumps(record.to_json()))
    else:
        value = "" if record.value is None else f" {record.value:g}"
        print(f"{record.kind.value}{value} on link {args.node_a}-{args.node_b} "
              f"from block {record.effective_block} (t={record.effective_time:.2f})")
    return 0


def cmd_fault_show(args: argparse.Namespace) -> int:
    try:
        records = read_faults(fault_file(args.state_dir, args.node_a, args.node_b))
    except TwinError as exc:
        return _error(str(exc))
    latest = max((r.effective_block for r in records), default=0)
    state = fault_state_at(records, latest)
    print(json.dumps({"records": [r.to_json() for r in records],
                      "state": {"down": state.down, "extra_loss_db": state.extra_loss_db,
                                "eavesdrop_fraction": state.eavesdrop_fraction}}, indent=1))
    return 0


def cmd_node_fault(args: argparse.Namespace) -> int:
    """Seam for node faults: delegated to the supervisor of the running network."""
    problem = _check_network(args.state_dir, [args.node])
    if problem:
        return _error(problem)
    module_name, function_name = NODE_FAULT_HOOKS[args.node_action]
    try:
        action = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError):
        return _error(f"{args.node_action} needs {module_name}.{function_name}(state_dir, node),"
                      " which this build does not provide")
    try:
        print(action(args.state_dir, args.node))
    except QkdnError as exc:        # e.g. the supervisor's own errors
        return _error(str(exc))
    return 0
