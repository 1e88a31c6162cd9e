"""Agent-side CPU of one ``<get>`` and one ``<edit-config>`` without SSH: the bytes of each
request go through ``NetconfSession`` (framing, parsing, dispatch, datastore, reply,
framing) exactly as the SSH glue hands them over, on the agent benchmark's node (50 links,
200 applications, the standalone agent's state). Not a test: prints CPU milliseconds.

    PYTHONPATH=. python -m bench.agent_session_timing [--repeat 300]

Compare two trees by running it with each on ``PYTHONPATH``, alternately.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from bench.agent_bench import NODE_NS, add_session_xml, build_node_config, remove_session_xml
from qkd_agent.cli import standalone_state
from qkd_agent.datastore import Datastore
from qkd_agent.framing import Framing, encode_message
from qkd_agent.operations import ServerState
from qkd_agent.session import NetconfSession
from qkd_agent.yang_context import load_context
from qkdn.namespaces import BASE_1_0, BASE_1_1, NETCONF_BASE_NS

HELLO = (f'<hello xmlns="{NETCONF_BASE_NS}"><capabilities><capability>{BASE_1_1}'
         "</capability></capabilities></hello>").encode()


def _rpc(body: str, message_id: int) -> bytes:
    return encode_message(
        f'<rpc xmlns="{NETCONF_BASE_NS}" message-id="{message_id}">{body}</rpc>'.encode(),
        Framing.CHUNKED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    qkdn_id = str(uuid.uuid4())
    store = Datastore(load_context(), build_node_config(qkdn_id, links=50, apps=200))
    server = ServerState(datastore=store, modules=(), state_provider=standalone_state())
    replies: list[bytes] = []
    session = NetconfSession(1, "bench", server, (BASE_1_0, BASE_1_1), replies.append,
                             lambda: None)
    session.start()
    session.data_received(encode_message(HELLO, Framing.END_OF_MESSAGE))
    get = _rpc(f'<get><filter type="subtree"><qkd_node xmlns="{NODE_NS}"/></filter></get>', 1)
    for _ in range(20):
        session.data_received(get)
    get_cpu = []
    for _ in range(args.repeat):
        start = time.process_time()
        session.data_received(get)
        get_cpu.append((time.process_time() - start) * 1000)
    reply_size = len(replies[-1])
    edit_cpu = []
    for n in range(args.repeat // 3):
        add = _rpc("<edit-config><target><running/></target>"
                   f"{add_session_xml(qkdn_id, n)}</edit-config>", 2)
        start = time.process_time()
        session.data_received(add)
        edit_cpu.append((time.process_time() - start) * 1000)
        if b"<ok/>" not in replies[-1]:
            raise RuntimeError(f"edit failed: {replies[-1][:300]!r}")
        session.data_received(_rpc("<edit-config><target><running/></target>"
                                   f"{remove_session_xml(qkdn_id, n)}</edit-config>", 3))
    print(f"get  CPU p50 {statistics.median(get_cpu):.3f} ms, mean {statistics.mean(get_cpu):.3f}"
          f" ms ({reply_size} B framed reply)")
    print(f"edit CPU p50 {statistics.median(edit_cpu):.3f} ms, mean "
          f"{statistics.mean(edit_cpu):.3f} ms")


if __name__ == "__main__":
    main()
