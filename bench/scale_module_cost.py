"""CPU of the emulated QKD modules of one node, per link end and second, in rate mode
(scale work, issues 4 and 7): ``python -m bench.scale_module_cost --ends 4 --window 20``.

Runs ``ends`` link ends (80-km reference links, ~320 kbit/s each, as the scale grids) in this
process, as a node process runs them — the node's idle batch period and reserve rule, each
end delivering into a real SQLite link store of the KM (``kms.key_store.LinkKeyStore``) — and
measures this process's CPU (``time.process_time``: every thread) over ``window`` seconds after
``settle`` seconds. Nothing consumes key, so after the start-up blocks every end is in its
steady state (the idle case of a node). With ``--batch S`` the batch period is ``S``; on a
tree whose modules have no scheduler parameter (before session 6) each module runs its own
thread. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from kms.key_store import LinkKeyStore
    from qkd_twin.module import LinkRole, ModuleConfig, ModuleMode, QkdModule, reserve_is_low
    from qkd_twin.physics import preset
    from qkdn import node_runtime

    parser = argparse.ArgumentParser(prog="python -m bench.scale_module_cost")
    parser.add_argument("--ends", type=int, default=4)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=6.0)
    parser.add_argument("--batch", type=float, default=node_runtime.MODULE_IDLE_BATCH_S)
    args = parser.parse_args(argv)

    class StoreSink:
        def __init__(self, store: LinkKeyStore) -> None:
            self.store = store

        def deliver(self, qkdl_id: str, block: int, key: bytes) -> None:
            self.store.deliver_many([(block, key)])

        def deliver_many(self, qkdl_id: str, blocks: list[tuple[int, bytes]]) -> None:
            self.store.deliver_many(blocks)

    shared = "scheduler" in inspect.signature(QkdModule).parameters
    scheduler = None
    if shared:
        from qkd_twin.module_scheduler import ModuleScheduler
        scheduler = ModuleScheduler(name="qkd-modules")
    with tempfile.TemporaryDirectory(prefix="qkdn-module-cost-") as tmp:
        modules = []
        for i in range(args.ends):
            qkdl_id = f"{i:08x}-0000-4000-8000-000000000000"
            store = LinkKeyStore(Path(tmp) / f"{i}.sqlite", qkdl_id, "a", "b",
                                 settle_blocks=0, incoming_wait_s=2.0)
            config = ModuleConfig(qkdl_id, LinkRole.TRANSMITTER, preset("reference", 80),
                                  os.urandom(32), ModuleMode.RATE,
                                  idle_batch_seconds=args.batch)
            holder: list = []

            def demand(store: LinkKeyStore = store, holder: list = holder) -> bool:
                return reserve_is_low(store.held_bytes(), holder[0].state.skr,
                                      node_runtime.MODULE_RESERVE_S)
            kwargs = {"demand": demand}
            if shared:
                kwargs["scheduler"] = scheduler
            module = QkdModule(config, StoreSink(store), **kwargs)
            holder.append(module)
            modules.append((module, store))
        for module, _ in modules:
            module.start()
        time.sleep(args.settle)
        load = os.getloadavg()[0]
        cpu0, wall0 = time.process_time(), time.monotonic()
        blocks0 = sum(m.blocks_done for m, _ in modules)
        time.sleep(args.window)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        blocks = sum(m.blocks_done for m, _ in modules) - blocks0
        for module, store in modules:
            module.stop()
            store.close()
        if scheduler is not None:
            scheduler.stop()
    print(json.dumps({
        "tree": str(Path(node_runtime.__file__).resolve().parents[1]),
        "shared_scheduler": shared, "ends": args.ends, "batch_s": args.batch,
        "window_s": round(wall, 1), "blocks": blocks,
        "ms_per_link_end_s": round(1000 * cpu / wall / args.ends, 4),
        "us_per_block": round(1e6 * cpu / max(1, blocks), 1),
        "load_before": round(load, 1), "load_after": round(os.getloadavg()[0], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
