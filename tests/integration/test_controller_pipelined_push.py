"""Pipelined edit-configs over the southbound's real NETCONF session to an agent (loopback):
several RPCs in flight on one session, each answered in order with its own outcome, and an
all-or-nothing push whose rollback goes through the same path."""

from __future__ import annotations

import pytest

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import NETCONF_BASE_NS
from qkdn.node_model import initial_node_config
from qkdn.topology import parse_topology
from sdn_controller.config_payloads import (
    orphan_delete_payload,
    session_config_payload,
    session_delete_payload,
)
from sdn_controller.errors import PushError
from sdn_controller.push import NodePush, PipelinedConfigurator, push_all, remove_all
from sdn_controller.session_config import AppBinding, KmConfig, KmRole, QoS, TokenBucket
from sdn_controller.southbound import (
    AEAD_CIPHERS,
    AgentEndpoint,
    AgentSession,
    SouthboundConfig,
)

from .southbound_transports import TRANSPORTS

pytestmark = pytest.mark.integration

PASSWORD = "pipeline-test-pw"
NODE = "etsi-qkd-sdn-node:qkd_node"
TOPO = parse_topology({
    "name": "pair", "nodes": [{"name": "a"}, {"name": "b"}],
    "links": [{"a": "a", "b": "b", "length_km": 10}],
    "slas": [{"name": "s", "max_bps": 10**6}],
    "users": [{"name": "ua", "sla": "s"}, {"name": "ub", "sla": "s"}],
    "saes": [{"id": "sae-a", "node": "a", "user": "ua"},
             {"id": "sae-b", "node": "b", "user": "ub"}]})


def km_config(name: str, session: str) -> KmConfig:
    node, peer = TOPO.node(name).qkdn_id, TOPO.node("b" if name == "a" else "a").qkdn_id
    link = TOPO.links[0].qkdl_id
    app = AppBinding("sae-a", "sae-b", "sae-a", "sae-b", node, peer, QoS(max_bps=1000),
                     (link,))
    return KmConfig(node, session, KmRole.SOURCE if name == "a" else KmRole.DESTINATION, 1, 60,
                    TokenBucket(1000, 1000), app, ())


@pytest.fixture(params=TRANSPORTS)
def agents(tmp_path, request):
    started, stores, sessions = [], {}, {}
    try:
        for name in "ab":
            ctx = load_context()
            store = Datastore(ctx, initial_node_config(TOPO, name))
            config = AgentConfig(password=PASSWORD, host_key=tmp_path / f"{name}.key")
            thread = AgentThread(QkdAgent(config, store, dict, ctx=ctx)).start()
            started.append(thread)
            stores[name] = store
            node_id = TOPO.node(name).qkdn_id
            session = AgentSession(AgentEndpoint(node_id, "127.0.0.1", thread.port, "admin",
                                                 PASSWORD, name),
                                   SouthboundConfig(poll_interval_s=3600, rpc_timeout_s=5,
                                                    notification_wait_s=0.1,  # quick stop()
                                                    transport=request.param))
            session.start(lambda *a: None, lambda *a: None)
            sessions[name] = session
        for session in sessions.values():
            assert session.wait_connected(15)
        yield sessions, stores
    finally:
        for session in sessions.values():
            session.stop()
        for thread in started:
            thread.stop()


def apps(store) -> set[str]:
    node = store.running_json()[NODE]
    return {a["app_id"] for a in node.get("qkd_applications", {}).get("qkd_app", [])}


S1, S2 = "5e551011-0000-4000-8000-000000000001", "5e551011-0000-4000-8000-000000000002"


def strict_delete_payload(config: KmConfig):
    """The session's deletion with ``nc:operation="delete"`` (refused with data-missing when
    the entry is absent: a payload the agent refuses, for the failure paths)."""
    payload = session_delete_payload(config)
    for element in payload.iter():
        if element.get(f"{{{NETCONF_BASE_NS}}}operation"):
            element.set(f"{{{NETCONF_BASE_NS}}}operation", "delete")
    return payload


def test_rpcs_in_flight_together_on_one_session_get_their_own_replies(agents):
    sessions, stores = agents
    session = sessions["a"]
    assert isinstance(session, PipelinedConfigurator)
    observed = []
    session._rpc_observer = lambda node, op, seconds, ok: \
        observed.append(ok) if op == "edit-config" else None   # not the periodic get
    first = session.send_edit_config(session_config_payload(km_config("a", S1)))
    refused = session.send_edit_config(strict_delete_payload(km_config("a", S2)))  # absent
    second = session.send_edit_config(session_config_payload(km_config("a", S2)))
    first.wait()
    with pytest.raises(PushError, match="data-missing") as err:
        refused.wait()
    assert err.value.node_id == TOPO.node("a").qkdn_id
    second.wait()
    assert apps(stores["a"]) == {S1, S2}
    assert observed == [True, False, True]


def test_a_refused_push_rolls_back_the_other_node_through_the_pipeline(agents):
    sessions, stores = agents
    configurators = {s.node_id: s for s in sessions.values()}
    good = NodePush(TOPO.node("a").qkdn_id, session_config_payload(km_config("a", S1)),
                    lambda: session_delete_payload(km_config("a", S1)))
    absent = strict_delete_payload(km_config("b", S2))   # refused: data-missing
    bad = NodePush(TOPO.node("b").qkdn_id, absent, absent)
    result = push_all([good, bad], configurators)
    assert set(result.failures) == {TOPO.node("b").qkdn_id}
    assert result.rolled_back == (TOPO.node("a").qkdn_id,)
    assert apps(stores["a"]) == set() and apps(stores["b"]) == set()


def test_sessions_use_aes_gcm(agents):
    """The south-bound offers AES-GCM first (no per-packet HMAC in Python); the agent
    (asyncssh) takes it."""
    sessions, _ = agents
    session = sessions["a"]._manager._session
    if hasattr(session, "_libssh"):   # libssh: the cipher it negotiated, each way
        with session._io_lock:
            ciphers = {session._libssh.get_cipher_out().decode(),
                       session._libssh.get_cipher_in().decode()}
        assert ciphers == {AEAD_CIPHERS[0]}
    else:
        transport = session._transport
        assert transport.local_cipher == transport.remote_cipher == AEAD_CIPHERS[0]


def test_deleting_a_session_already_gone_is_confirmed(agents):
    """The overload race of the 100-node run: an orphan removal took the session's entries
    away before its own deletion arrived (which used to be refused with data-missing)."""
    sessions, stores = agents
    configurators = {s.node_id: s for s in sessions.values()}
    configs = [km_config("a", S1), km_config("b", S1)]
    assert push_all([NodePush(c.node_id, session_config_payload(c),
                              session_delete_payload(c)) for c in configs], configurators).ok
    sessions["a"].edit_config(orphan_delete_payload(TOPO.node("a").qkdn_id, [S1], []))
    assert apps(stores["a"]) == set() and apps(stores["b"]) == {S1}
    result = remove_all(configs, configurators)
    assert not result.failures
    assert set(result.confirmed) == {c.node_id for c in configs}
    assert apps(stores["a"]) == set() and apps(stores["b"]) == set()
    assert remove_all(configs, configurators).failures == {}   # and again: still fine


def test_a_closed_session_refuses_to_send(agents):
    sessions, _ = agents
    session = sessions["b"]
    session.stop()
    with pytest.raises(PushError, match="no NETCONF session"):
        session.send_edit_config(session_config_payload(km_config("b", S1)))
