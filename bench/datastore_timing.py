"""Time the datastore work of the RPCs the controller sends most, on a node with 50 links
and 200 applications (the paper's scale target). Not a test: prints medians.

    PYTHONPATH=. python -m bench.datastore_timing [--repeat 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
TYPES = "etsi-qkd-node-types"
NODE_ID = "11111111-1111-4111-8111-111111111111"


def _uuid(prefix: int, i: int) -> str:
    return f"{prefix:08x}-0000-4000-8000-{i:012x}"


def scale_config(links: int = 50, apps: int = 200) -> dict[str, Any]:
    return {NODE: {
        "qkdn_id": NODE_ID,
        "qkdn_capabilities": {"link_stats_support": True, "key_relay_mode_enable": True},
        "qkd_interfaces": {"qkd_interface": [
            {"qkdi_id": i, "qkdi_type": f"{TYPES}:DV-QKD",
             "qkdi_att_point": {"device": f"emu{i}", "port": i}} for i in range(10)]},
        "qkd_links": {"qkd_link": [
            {"qkdl_id": _uuid(1, i), "qkdl_enable": True,
             "qkdl_local": {"qkdn_id": NODE_ID}, "qkdl_remote": {"qkdn_id": _uuid(9, i)},
             "qkdl_type": f"{TYPES}:VIRT", "virt_prev_hop": _uuid(9, i),
             "virt_next_hop": [_uuid(8, i)], "virt_bandwidth": 1000 + i} for i in range(links)]},
        "qkd_applications": {"qkd_app": [
            {"app_id": _uuid(2, i), "app_type": f"{TYPES}:CLIENT", "app_priority": i % 5,
             "server_app_id": f"sae://s{i}", "client_app_id": [f"sae://c{i}"],
             "app_qos": {"max_bandwidth": 64000, "min_bandwidth": 1000, "jitter": 10, "ttl": 60},
             "backing_qkdl_id": [_uuid(1, i % links)], "local_qkdn_id": NODE_ID,
             "remote_qkdn_id": _uuid(9, i)} for i in range(apps)]},
    }}


def operational_state(links: int = 50, apps: int = 200) -> dict[str, Any]:
    return {NODE: {
        "qkdn_status": f"{TYPES}:OPERATING",
        "qkd_links": {"qkd_link": [
            {"qkdl_id": _uuid(1, i), "qkdl_status": f"{TYPES}:ACTIVE",
             "qkdl_performance": {"skr": 100000, "eskr": 90000, "expected_consumption": 1000}}
            for i in range(links)]},
        "qkd_applications": {"qkd_app": [
            {"app_id": _uuid(2, i), "app_status": f"{TYPES}:ON"} for i in range(apps)]},
    }}


def edit_text(n: int) -> bytes:
    """One application plus the virtual link backing it, as the controller sends them."""
    return (
        f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}"'
        f' xmlns:t="{ETSI_TYPES_NS}"><qkd_applications><qkd_app>'
        f"<app_id>{_uuid(3, n)}</app_id><app_type>t:CLIENT</app_type>"
        f"<app_priority>1</app_priority><backing_qkdl_id>{_uuid(4, n)}</backing_qkdl_id>"
        "<app_qos><max_bandwidth>8000</max_bandwidth></app_qos></qkd_app></qkd_applications>"
        f"<qkd_links><qkd_link><qkdl_id>{_uuid(4, n)}</qkdl_id><qkdl_type>t:VIRT</qkdl_type>"
        f"<virt_prev_hop>{_uuid(9, 1)}</virt_prev_hop><virt_next_hop>{_uuid(8, 1)}"
        "</virt_next_hop><virt_bandwidth>8000</virt_bandwidth></qkd_link></qkd_links>"
        "</qkd_node></config>"
    ).encode()


def undo_text(n: int) -> bytes:
    """Removes what :func:`edit_text` added, so that every timed edit sees the same store."""
    return (
        f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_applications><qkd_app nc:operation="delete">'
        f"<app_id>{_uuid(3, n)}</app_id></qkd_app></qkd_applications><qkd_links>"
        f'<qkd_link nc:operation="delete"><qkdl_id>{_uuid(4, n)}</qkdl_id></qkd_link>'
        "</qkd_links></qkd_node></config>"
    ).encode()


def _median_ms(
    action: Callable[[], object], repeat: int, after: Callable[[], object] | None = None
) -> tuple[float, float, float]:
    """Median wall-clock, median CPU and best CPU (this process) milliseconds; CPU time is
    the figure that survives a loaded machine. ``after`` runs untimed after each sample."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
        if after is not None:
            after()
    return statistics.median(wall), statistics.median(cpu), min(cpu)


def _python_speed_ms() -> float:
    """CPU ms for a million Python additions: ~40-60 ms on an idle modern x86 core."""
    start = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i
    return (time.process_time() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    ctx = load_context()
    store = Datastore(ctx, scale_config())
    state = operational_state()
    standalone = {NODE: {"qkdn_status": f"{TYPES}:OPERATING"}}  # qkd_agent.cli's state
    link_filter = etree.fromstring(
        f'<filter xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links>'
        "<qkd_link><qkdl_performance/></qkd_link></qkd_links></qkd_node></filter>"
    )
    xpath_filter = etree.fromstring(
        f'<filter xmlns="{NETCONF_BASE_NS}" xmlns:q="{ETSI_NODE_NS}" type="xpath"'
        ' select="/q:qkd_node/q:qkd_links/q:qkd_link/q:qkdl_performance"/>'
    )
    counter = iter(range(10**9))
    current = [0]

    def edit_add_app_and_link() -> None:
        current[0] = next(counter)
        store.edit_config(etree.fromstring(edit_text(current[0])))

    def undo() -> None:
        store.edit_config(etree.fromstring(undo_text(current[0])))

    results = {
        "get-config whole qkd_node (+ serialise)":
            lambda: etree.tostring(store.get_config()),
        "get whole qkd_node with state (+ serialise)":
            lambda: etree.tostring(store.get(None, state)),
        "  the same, served (get_serialised)": lambda: store.get_serialised(None, state),
        "get whole qkd_node, standalone state, served":
            lambda: store.get_serialised(None, standalone),
        "get-config whole qkd_node, served": lambda: store.get_serialised(None, None),
        "get links' performance, subtree filter": lambda: store.get(link_filter, state),
        "get links' performance, xpath filter": lambda: store.get(xpath_filter, state),
        "edit-config one app + one virtual link": edit_add_app_and_link,
        "running_json()": store.running_json,
    }
    print(f"calibration: 1e6 Python additions take {_python_speed_ms():.0f} ms CPU here")
    print(f"{str(args.repeat) + ' runs':48s} {'wall p50':>9s} {'cpu p50':>9s} {'cpu min':>9s}")
    for name, action in results.items():
        after = undo if action is edit_add_app_and_link else None
        wall, cpu, best = _median_ms(action, args.repeat, after)
        print(f"{name:48s} {wall:7.2f}ms {cpu:7.2f}ms {best:7.2f}ms")


if __name__ == "__main__":
    main()
