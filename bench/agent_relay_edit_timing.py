"""Agent-side CPU of the controller's edit-configs at a relay KM, without SSH.

The relay node of the controller benchmark's 6-node line (``bench.controller_bench``: node
``2``, two physical links, the idle benchmark node's initial configuration) receives the
controller's own payloads for a 5-hop session (``session_config_payload`` /
``session_delete_payload`` of ``sdn_controller.config_payloads``, framed in an ``<rpc>`` by
``sdn_controller.netconf_pipeline.edit_config_rpc``): install, then removal, ``--repeat``
times. Every request goes through :class:`~qkd_agent.session.NetconfSession` (framing,
parsing, dispatch, datastore, reply, framing) as the SSH glue hands it over, and the parts
are timed separately (CPU time of this thread):

- ``parse``: :func:`qkd_agent.session.parse_message` of the ``<rpc>``;
- ``datastore``: :meth:`~qkd_agent.datastore.Datastore.edit_config`, with its listener;
- ``session``: the whole request (the two above, dispatch, reply built and framed).

Not a test: prints CPU microseconds (median and minimum: on a busy machine the minimum
is the steadier figure for comparing two trees). ``--sessions N`` keeps N other sessions installed at
the relay meanwhile (a busier node). Compare two trees by running it with each on
``PYTHONPATH``, alternately::

    PYTHONPATH=. python -m bench.agent_relay_edit_timing [--repeat 500] [--sessions 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from qkd_agent.datastore import Datastore
from qkd_agent.framing import Framing, encode_message
from qkd_agent.operations import ServerState
from qkd_agent.session import NetconfSession, parse_message
from qkd_agent.yang_context import load_context
from qkdn.namespaces import BASE_1_0, BASE_1_1, NETCONF_BASE_NS

RELAY = "2"
HELLO = (f'<hello xmlns="{NETCONF_BASE_NS}"><capabilities><capability>{BASE_1_1}'
         "</capability></capabilities></hello>").encode()


def relay_payloads(sessions: int) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    """The relay's initial configuration and, per session, the framed ``<rpc>`` of its
    install and of its removal, as the controller sends them."""
    from bench.controller_bench import _line
    from qkdn.node_model import initial_node_config
    from qkdn.topology import parse_topology
    from sdn_controller.config_payloads import session_config_payload, session_delete_payload
    from sdn_controller.link_metrics import LinkMetrics, LinkStatus
    from sdn_controller.netconf_pipeline import edit_config_rpc
    from sdn_controller.routing import build_graph, route_session
    from sdn_controller.session_config import QoS, build_km_configs, token_bucket_for

    topo = parse_topology(_line(6))
    ids = {n.name: n.qkdn_id for n in topo.nodes}
    links = [LinkMetrics(lk.qkdl_id, ids[lk.a], ids[lk.b], LinkStatus.ACTIVE, skr=10**6)
             for lk in topo.links]
    graph = build_graph(links)
    out = []
    for n in range(sessions):
        session_id = str(uuid.UUID(int=n + 1))
        route = route_session(graph, ids["0"], ids["5"], 1000)
        configs = build_km_configs(
            session_id=session_id, generation=0, route=route,
            initiator=("sae-0", ids["0"]), responder=("sae-5", ids["5"]),
            qos=QoS(max_bps=1000, priority=1), priority=1, idle_timeout_s=60,
            bucket=token_bucket_for(1000, burst_s=2.0))
        (relay,) = [c for c in configs if c.node_id == ids[RELAY]]
        out.append(tuple(
            encode_message(edit_config_rpc(f"m{n}-{kind}", payload).encode(), Framing.CHUNKED)
            for kind, payload in (("install", session_config_payload(relay)),
                                  ("delete", session_delete_payload(relay)))))
    return initial_node_config(topo, RELAY), out


def _cpu_us(fn: Callable[[], object]) -> float:
    started = time.thread_time()
    fn()
    return (time.thread_time() - started) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=0,
                        help="other sessions installed at the relay meanwhile")
    args = parser.parse_args()
    initial, payloads = relay_payloads(args.sessions + 1)
    store = Datastore(load_context(), initial)
    changes: list[int] = []
    store.add_listener(lambda old, new: changes.append(1))
    server = ServerState(datastore=store, modules=())
    replies: list[bytes] = []
    session = NetconfSession(1, "bench", server, (BASE_1_0, BASE_1_1), replies.append,
                             lambda: None)
    session.start()
    session.data_received(encode_message(HELLO, Framing.END_OF_MESSAGE))
    for install, _ in payloads[1:]:
        session.data_received(install)
    install, delete = payloads[0]
    for _ in range(20):  # warm-up
        session.data_received(install)
        session.data_received(delete)
    whole: dict[str, list[float]] = {"install": [], "delete": []}
    parse: list[float] = []
    for _ in range(args.repeat):
        for kind, framed in (("install", install), ("delete", delete)):
            whole[kind].append(_cpu_us(lambda f=framed: session.data_received(f)))
            if b"<ok/>" not in replies[-1]:
                raise RuntimeError(f"edit failed: {replies[-1][:300]!r}")
    body = install[install.index(b"<rpc"):install.rindex(b"\n##\n")]
    body = body[:body.rindex(b"</rpc>") + len(b"</rpc>")]
    parse = [_cpu_us(lambda: parse_message(body)) for _ in range(args.repeat)]
    datastore: dict[str, list[float]] = {"install": [], "delete": []}
    for _ in range(args.repeat):
        for kind, framed in (("install", install), ("delete", delete)):
            config = parse_message(framed[framed.index(b"<rpc"):framed.rindex(b"</rpc>") + 6])
            element = config[0].find(f"{{{NETCONF_BASE_NS}}}config")
            datastore[kind].append(_cpu_us(lambda e=element: store.edit_config(e)))
    for kind in ("install", "delete"):
        print(f"{kind:7s} session {statistics.median(whole[kind]):7.1f} us (min "
              f"{min(whole[kind]):6.1f}), datastore {statistics.median(datastore[kind]):7.1f} us "
              f"(min {min(datastore[kind]):6.1f}); p50 of {args.repeat}")
    print(f"parse of the install <rpc> {statistics.median(parse):.1f} us")


if __name__ == "__main__":
    main()
