"""A real agent serves NETCONF the same on uvloop and on asyncio's own loop (ncclient client)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from ncclient.operations import RPCError

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, NETCONF_BASE_NS
from qkdn.netconf_client import connect

pytestmark = pytest.mark.integration
pytest.importorskip("uvloop")

NODE_ID = "11111111-1111-4111-8111-111111111111"
NODE = "etsi-qkd-sdn-node:qkd_node"


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_agent_serves_on_either_loop(tmp_path: Path, kind: str):
    ctx = load_context()
    store = Datastore(ctx, {NODE: {"qkdn_id": NODE_ID}})
    agent = QkdAgent(AgentConfig(password="pw", host_key=tmp_path / "host_key",
                                 event_loop=kind), store, ctx=ctx)
    with AgentThread(agent) as running:
        assert kind in type(running._loop).__module__
        m = connect("127.0.0.1", running.port, "admin", "pw")
        try:
            m.create_subscription()
            config = (f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}">'
                      f"<qkdn_id>{NODE_ID}</qkdn_id><qkdn_location_id>lab-{{}}"
                      "</qkdn_location_id></qkd_node></config>")
            for n in range(5):
                m.edit_config(target="running", config=config.format(n))
            assert store.running_json()[NODE]["qkdn_location_id"] == "lab-4"
            got = m.get_config(source="running").data_xml
            assert "lab-4" in got and NODE_ID in got
            # a refused edit is an rpc-error on either loop
            with pytest.raises(RPCError) as refused:
                m.edit_config(target="running", config=config.replace(NODE_ID, "not-a-uuid")
                              .format(9))
            assert refused.value.tag == "invalid-value"
            assert store.running_json()[NODE]["qkdn_location_id"] == "lab-4"
            assert agent.notify({"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {
                "qkdl_id": "22222222-2222-4222-8222-222222222222", "reason": "cut"}}}) == 1
            event = m.take_notification(timeout=10)
            assert event is not None and "sdqkdn_link_down" in event.notification_xml
        finally:
            m.close_session()


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_agent_socket_has_nodelay_on_either_loop(tmp_path: Path, kind: str):
    ctx = load_context()
    agent = QkdAgent(AgentConfig(password="pw", event_loop=kind),
                     Datastore(ctx, {NODE: {"qkdn_id": NODE_ID}}), ctx=ctx)
    with AgentThread(agent) as running:
        m = connect("127.0.0.1", running.port, "admin", "pw")
        try:
            m.get_config(source="running")
            sockets = running.call(_server_sockets, agent)
            assert sockets and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                                   for s in sockets)
        finally:
            m.close_session()


def _server_sockets(agent: QkdAgent) -> list:
    """The TCP sockets of the agent's accepted connections (on the agent's loop)."""
    found = []
    for session in agent.server.sessions.values():
        write = session._write
        channel_session = getattr(write, "__self__", None)
        chan = getattr(channel_session, "_chan", None)
        if chan is not None:
            found.append(chan.get_extra_info("socket"))
    return found
