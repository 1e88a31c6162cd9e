"""With a controller (require_controller): sessions wait for the qkd_app configuration that
arrives through the agent (apply_running_config); deletion and idle expiry terminate them."""

import threading
import time
import uuid

import pytest
import requests

from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, link_id, node_qkdn_id

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B"}
APP = "22222222-2222-4333-8444-555555555555"


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def config(node, idle=None):
    km_session = {"role": "source" if node == "A" else "destination"}
    if idle:
        km_session["idle_timeout"] = idle
    return {"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": node_qkdn_id(node),
        "qkd_applications": {"qkd_app": [{
            "app_id": APP, "server_app_id": "sae-a", "client_app_id": ["sae-b"],
            "backing_qkdl_id": [link_id("A", "B")], "remote_qkdn_id": node_qkdn_id("B" if node == "A" else "A"),
            "qkdn-key-manager:km_session": km_session}]},
        "qkd_links": {"qkd_link": [{"qkdl_id": link_id("A", "B"), "qkdl_type": "etsi-qkd-node-types:PHYS",
                                    "qkdl_remote": {"qkdn_id": node_qkdn_id("B" if node == "A" else "A")}}]},
    }}


@pytest.fixture
def net(tmp_path):
    clock = FakeClock()
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES,
                        config=KmConfig(require_controller=True, config_wait_s=0.3,
                                        reask_after_s=1.0),
                        clock=clock) as net:
        net.clock = clock
        net.feed("A", "B", blocks=4)
        yield net


def enc(net):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert("sae-a"), net.ca
    return s.post(net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys", json={"number": 1}, timeout=10)


def names(net, node):
    return [next(iter(b)) for n, b in net.notifications if n == node]


def test_waits_for_configuration_then_serves_then_deletion_terminates(net):
    r = enc(net)   # held config_wait_s for the controller, then 503
    assert r.status_code == 503 and "authenticating" in r.json()["message"]
    new = [b for n, b in net.notifications if "etsi-qkd-sdn-node:sdqkdn_application_new" in b]
    request = new[0]["etsi-qkd-sdn-node:sdqkdn_application_new"]["qkd_application"]["qkdn-key-manager:km_request"]
    assert str(uuid.UUID(request.pop("request_id"))) and \
        request == {"authenticated_sae_id": "sae-a", "application_interface": "etsi-014"}
    assert enc(net).status_code == 503
    assert len(new) == 1
    net.kms["B"].apply_running_config(config("B"))
    net.kms["A"].apply_running_config(config("A"))
    r = enc(net)
    assert r.status_code == 200, r.text
    state = net.kms["A"].operational_state()["etsi-qkd-sdn-node:qkd_node"]["qkd_applications"]["qkd_app"][0]
    assert state["app_id"] == APP and state["app_status"] == "etsi-qkd-node-types:ON"
    assert "qkdn-key-manager:km_key_request" in names(net, "A")
    net.kms["A"].apply_running_config({"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": node_qkdn_id("A")}})
    assert "etsi-qkd-sdn-node:sdqkdn_application_disconnected" in names(net, "A")
    assert net.kms["A"].sessions()[APP].state.value == "terminated"


def test_idle_timer_expires_the_session(net):
    net.kms["A"].apply_running_config(config("A", idle=30))
    net.kms["B"].apply_running_config(config("B", idle=30))
    assert enc(net).status_code == 200
    net.clock.now += 29
    net.kms["A"].tick()
    assert net.kms["A"].sessions()[APP].state.value == "operative"
    net.clock.now += 2
    net.kms["A"].tick()
    session = net.kms["A"].sessions()[APP]
    assert session.state.value == "terminated"
    changes = [b["qkdn-key-manager:km_session_state_change"] for n, b in net.notifications
               if n == "A" and "qkdn-key-manager:km_session_state_change" in b]
    assert changes[-1] == {"app_id": APP, "state": "terminated", "reason": "idle timeout"}
    state = net.kms["A"].operational_state()["etsi-qkd-sdn-node:qkd_node"]["qkd_applications"]["qkd_app"][0]
    assert state["app_status"] == "etsi-qkd-node-types:OUT-OF-TIME"


def test_housekeeping_wakes_when_the_next_idle_timer_runs_out(net):
    km = net.kms["A"]
    km.apply_running_config(config("A", idle=30))
    net.kms["B"].apply_running_config(config("B", idle=30))
    assert enc(net).status_code == 200
    assert km.next_tick_in() == pytest.approx(km.config.resolve_interval_s)
    net.clock.now += 29.7                  # due in 0.3 s: sooner than the 1 s interval
    assert km.next_tick_in() == pytest.approx(0.305, abs=0.01)
    net.clock.now += 1
    assert km.next_tick_in() == pytest.approx(0.005)


def test_unused_keys_expire_after_app_qos_ttl(net):
    for node in ("A", "B"):
        cfg = config(node)
        cfg["etsi-qkd-sdn-node:qkd_node"]["qkd_applications"]["qkd_app"][0]["app_qos"] = {"ttl": 10}
        net.kms[node].apply_running_config(cfg)
    r = enc(net)
    assert r.status_code == 200
    key_id = r.json()["keys"][0]["key_ID"]
    net.clock.now += 11
    net.kms["A"].tick()
    net.kms["B"].tick()
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert("sae-b"), net.ca
    r = s.post(net.kms["B"].base_url + "/api/v1/keys/sae-a/dec_keys", json={"key_IDs": [{"key_ID": key_id}]},
               timeout=10)
    assert r.status_code == 400
    assert net.kms["A"].pool.ready_count("sae-a", "sae-b", 256) == 0   # the surplus expired too


def _request_ids(net, node):
    return [b["etsi-qkd-sdn-node:sdqkdn_application_new"]["qkd_application"]
            ["qkdn-key-manager:km_request"]["request_id"]
            for n, b in net.notifications
            if n == node and "etsi-qkd-sdn-node:sdqkdn_application_new" in b]


def _after_request(net, node, action):
    """Run ``action(request_id)`` as the controller would, once ``node`` reported a request."""
    def run():
        deadline = time.monotonic() + 5
        while not _request_ids(net, node) and time.monotonic() < deadline:
            time.sleep(0.01)
        action(_request_ids(net, node)[-1])
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def refusal_config(node, request_id, status, reason, *, access_denied=False, proposal=None):
    entry = {"request_id": request_id, "sae_id": "sae-a", "peer_sae_id": "sae-b",
             "etsi004_status": status, "reason": reason, "access_denied": access_denied,
             "refused_at": "2026-11-27T06:00:00.000Z"}
    if proposal:
        entry["counter_proposal"] = proposal
    return {"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": node_qkdn_id(node),
        "qkdn-key-manager:km_refusals": {"refusal": [entry]}}}


def test_first_014_request_is_held_until_the_configuration_arrives(net):
    net.kms["B"].apply_running_config(config("B"))
    thread = _after_request(net, "A", lambda rid: (time.sleep(0.1),
                                                   net.kms["A"].apply_running_config(config("A"))))
    r = enc(net)
    thread.join()
    assert r.status_code == 200, r.text


def test_014_access_refusal_is_401_with_the_reason(net):
    thread = _after_request(net, "A", lambda rid: net.kms["A"].apply_running_config(
        refusal_config("A", rid, 4, "user-revoked", access_denied=True)))
    started = time.monotonic()
    r = enc(net)
    thread.join()
    assert r.status_code == 401, r.text
    assert time.monotonic() - started < 0.3 * 0.9 + 0.5
    body = r.json()
    assert "user-revoked" in body["message"]
    assert body["details"] == [{"reason": "user-revoked", "etsi004_status": 4}]
    # the refused request is over: the next request asks the controller again
    enc(net)
    assert len(_request_ids(net, "A")) == 2


def test_014_refusal_without_access_denial_is_503(net):
    thread = _after_request(net, "A", lambda rid: net.kms["A"].apply_running_config(
        refusal_config("A", rid, 4, "no-path")))
    r = enc(net)
    thread.join()
    assert r.status_code == 503 and "no-path" in r.json()["message"]


def _open(net, qos):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert("sae-a"), net.ca
    return s.post(net.kms["A"].base_url + "/api/v1/etsi004/open_connect",
                  json={"source": "sae-a", "destination": "sae-b", "QoS": qos,
                        "Key_stream_ID": None}, timeout=10).json()


def test_004_qos_refusal_is_status_7_with_the_counter_proposal(net):
    thread = _after_request(net, "A", lambda rid: net.kms["A"].apply_running_config(
        refusal_config("A", rid, 7, "qos-above-sla",
                       proposal={"max_bps": 1000, "min_bps": 500, "priority": 3})))
    reply = _open(net, {"max_bps": 5000, "min_bps": 2000, "priority": 9, "timeout": 5000,
                        "key_chunk_size": 64, "ttl": 30})
    thread.join()
    assert reply["status"] == 7
    assert reply["QoS"]["max_bps"] == 1000 and reply["QoS"]["min_bps"] == 500
    assert reply["QoS"]["priority"] == 3
    assert reply["QoS"]["key_chunk_size"] == 64 and reply["QoS"]["ttl"] == 30  # as asked


def test_004_access_refusal_is_status_4(net):
    thread = _after_request(net, "A", lambda rid: net.kms["A"].apply_running_config(
        refusal_config("A", rid, 4, "unknown-application", access_denied=True)))
    started = time.monotonic()
    reply = _open(net, {"timeout": 5000})
    thread.join()
    assert reply["status"] == 4 and time.monotonic() - started < 2


def test_a_request_the_controller_never_answered_is_asked_again(net):
    assert enc(net).status_code == 503          # unanswered (no controller here)
    assert enc(net).status_code == 503          # still within reask_after_s: same request
    assert len(_request_ids(net, "A")) == 1
    net.clock.now += 1.0                        # reask_after_s later (e.g. a restarted
    assert enc(net).status_code == 503          # controller that never heard of it)
    assert len(_request_ids(net, "A")) == 2


def _open_as(net, sae, peer, qos):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s.post(net.kms[SAES[sae]].base_url + "/api/v1/etsi004/open_connect",
                  json={"source": sae, "destination": peer, "QoS": qos,
                        "Key_stream_ID": None}, timeout=10).json()


def _get_key(net, sae, ksid):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s.post(net.kms[SAES[sae]].base_url + "/api/v1/etsi004/get_key",
                  json={"Key_stream_ID": ksid, "index": 0}, timeout=10).json()


def _until(condition, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


@pytest.mark.parametrize("first", ["A", "B"])
def test_004_both_ends_open_at_once_and_both_get_the_session(net, first):
    """Both SAEs OPEN_CONNECT (null KSID) before the controller has configured either KM.
    ``first`` gets its configuration first: its stream's open reaches the peer KM while the
    peer's OPEN_CONNECT still waits for its own. Both answer 0 (SUCCESSFUL) with the
    session's KSID and share the key at each index; neither is told 5 (KSID in use)."""
    qos = {"timeout": 5000, "key_chunk_size": 32}
    replies = {}
    threads = [threading.Thread(target=lambda s=s, p=p: replies.update({s: _open_as(net, s, p, qos)}))
               for s, p in (("sae-a", "sae-b"), ("sae-b", "sae-a"))]
    for thread in threads:
        thread.start()
    new = "etsi-qkd-sdn-node:sdqkdn_application_new"
    _until(lambda: {n for n, b in net.notifications if new in b} == {"A", "B"},
           "both KMs asked the controller")
    later = "B" if first == "A" else "A"
    net.kms[first].apply_running_config(config(first))
    _until(lambda: APP in net.kms[later].streams._streams, "the open reached the later KM")
    net.kms[later].apply_running_config(config(later))
    for thread in threads:
        thread.join(10)
    assert replies["sae-a"]["status"] == replies["sae-b"]["status"] == 0, replies
    assert replies["sae-a"]["Key_stream_ID"] == replies["sae-b"]["Key_stream_ID"] == APP
    a0, b0 = _get_key(net, "sae-a", APP), _get_key(net, "sae-b", APP)
    assert a0["status"] == b0["status"] == 0, (a0, b0)
    assert a0["key_buffer"] == b0["key_buffer"]


def _close(net, sae, ksid):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s.post(net.kms[SAES[sae]].base_url + "/api/v1/etsi004/close",
                  json={"Key_stream_ID": ksid}, timeout=10).json()


def test_004_close_after_the_peer_ended_the_session_succeeds_once(net):
    """The peer's CLOSE ends the session and the controller deletes it everywhere; the other
    application's CLOSE of the stream it had open then answers 0 (it is closed), a second
    CLOSE 4, and a KSID this KM never served 4."""
    for node in ("A", "B"):
        net.kms[node].apply_running_config(config(node))
    qos = {"timeout": 5000, "key_chunk_size": 32}
    assert _open_as(net, "sae-a", "sae-b", qos)["status"] == 1
    assert _open_as(net, "sae-b", "sae-a", qos)["status"] == 0
    assert _close(net, "sae-a", APP)["status"] == 0
    for node in ("A", "B"):   # the controller's deletion of the ended session
        net.kms[node].apply_running_config({"etsi-qkd-sdn-node:qkd_node": {
            "qkdn_id": node_qkdn_id(node)}})
    assert APP not in net.kms["B"].streams._streams
    assert _close(net, "sae-b", APP.upper())["status"] == 0
    assert _close(net, "sae-b", APP)["status"] == 4
    assert _close(net, "sae-b", str(uuid.uuid4()))["status"] == 4


def test_one_state_change_notified_per_session_and_configuration(net):
    """A configuration takes a session from authenticating through user-accepted to operative
    in one step: the controller is told the state the session is in afterwards, once (every
    transition still goes to the KM's event log). Its deletion: terminated, then
    disconnected."""
    key = "qkdn-key-manager:km_session_state_change"
    net.kms["A"].apply_running_config(config("A"))
    changes = [b[key] for n, b in net.notifications if n == "A" and key in b]
    assert changes == [{"app_id": APP, "state": "operative",
                        "reason": "session configuration received"}]
    net.notifications.clear()
    net.kms["A"].apply_running_config({"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": node_qkdn_id("A")}})
    assert [next(iter(b)) for n, b in net.notifications if n == "A"] == [
        key, "etsi-qkd-sdn-node:sdqkdn_application_disconnected"]
