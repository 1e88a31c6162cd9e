"""With a controller (require_controller): sessions wait for the qkd_app configuration that
arrives through the agent (apply_running_config); deletion and idle expiry terminate them."""

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
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES, config=KmConfig(require_controller=True),
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
    r = enc(net)
    assert r.status_code == 503 and "authenticating" in r.json()["message"]
    new = [b for n, b in net.notifications if "etsi-qkd-sdn-node:sdqkdn_application_new" in b]
    request = new[0]["etsi-qkd-sdn-node:sdqkdn_application_new"]["qkd_application"]["qkdn-key-manager:km_request"]
    assert request == {"authenticated_sae_id": "sae-a", "application_interface": "etsi-014"}
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
