"""``python -m bench.run``: run every benchmark module and write the report."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from bench.report import format_table, issue_named_rows, machine_info, row

BENCH_DIR = Path(__file__).resolve().parent
#: Modules that take many minutes: run only when named with ``--only`` (e.g. ``--only scale``).
OPT_IN = frozenset({"bench.scale_bench"})


def discover() -> list[str]:
    return sorted(f"bench.{m.name}" for m in pkgutil.iter_modules([str(BENCH_DIR)])
                  if m.name.endswith("_bench"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "report.json")
    parser.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only modules whose name contains this (repeatable)")
    args = parser.parse_args(argv)
    rows = []
    failures = 0
    for name in discover():
        if args.only and not any(part in name for part in args.only):
            continue
        if name in OPT_IN and not args.only:
            continue
        print(f"running {name} ...", flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(name)
            rows.extend(module.run(quick=args.quick))
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            failures += 1
            traceback.print_exc()
            rows.append(row(f"{name.split('.', 1)[1]}.error", 1, "failed", target="0",
                            meets=False))
        print(f"  done in {time.monotonic() - started:.1f} s", flush=True)
    rows.extend(issue_named_rows(rows))
    report = {"machine": machine_info(), "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                        time.gmtime()),
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = format_table(rows)
    args.out.with_suffix(".txt").write_text(table + "\n")
    print(table)
    print(f"\nreport: {args.out} and {args.out.with_suffix('.txt')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
