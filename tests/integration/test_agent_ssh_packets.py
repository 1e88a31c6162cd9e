"""SSH packets per NETCONF reply of a real agent, counted at a paramiko client (ncclient)."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
from ncclient import manager

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, NETCONF_BASE_NS

pytestmark = pytest.mark.integration

NODE_ID = "11111111-1111-4111-8111-111111111111"


def _received_packets(m: manager.Manager) -> int:
    packetizer = m._session._transport.packetizer
    return packetizer._Packetizer__received_packets  # paramiko's rekey counter


@pytest.mark.parametrize("cipher", ["aes128-gcm@openssh.com", "aes128-ctr"])
def test_each_reply_is_one_ssh_packet(tmp_path: Path, cipher: str, monkeypatch):
    monkeypatch.setattr(paramiko.Transport, "_preferred_ciphers", (cipher,))
    ctx = load_context()
    store = Datastore(ctx, {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": NODE_ID}})
    agent = QkdAgent(AgentConfig(password="pw", host_key=tmp_path / "host_key"), store,
                     ctx=ctx)
    with AgentThread(agent) as running, manager.connect(
            host="127.0.0.1", port=running.port, username="admin", password="pw",
            hostkey_verify=False, look_for_keys=False, allow_agent=False, timeout=10) as m:
        assert m._session._transport.remote_cipher == cipher
        config = (f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}">'
                  f"<qkdn_id>{NODE_ID}</qkdn_id><qkdn_location_id>lab-{{}}</qkdn_location_id>"
                  "</qkd_node></config>")
        m.edit_config(target="running", config=config.format(0))
        before = _received_packets(m)
        for n in range(1, 11):
            m.edit_config(target="running", config=config.format(n))
        # one CHANNEL_DATA per <rpc-reply> (asyncssh alone would put an empty
        # SSH_MSG_IGNORE before each); a window adjust at most now and then
        assert _received_packets(m) - before <= 11
        assert store.running_json()["etsi-qkd-sdn-node:qkd_node"]["qkdn_location_id"] == "lab-10"
