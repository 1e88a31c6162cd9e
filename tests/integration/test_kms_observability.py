"""Events, metrics and logs of real KMs: three KMs A–B–C on loopback in controller mode, a
session configured the way the controller does it (after the application asked), ETSI 014
and 004 keys relayed through B; then the events each KM recorded, its /metrics, and a grep
of every log line and event for the delivered keys."""

from __future__ import annotations

import base64
import io
import logging
import time
import uuid

import pytest
import requests

from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, node_qkdn_id, virtual_link
from qkdn.event_log import EVENTS_FILE, EventKind, collect_events, read_events
from qkdn.metrics import MetricsServer, sample_value
from qkdn.structured_logging import JsonFormatter

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-c": "C", "sae-b": "B"}
SESSION = str(uuid.UUID("21111111-2222-4333-8444-555555555555"))
VIRT = str(uuid.UUID("29999999-2222-4333-8444-555555555555"))


def running_config(node, prev, nxt, with_app=True):
    """What the controller edit-configs on ``node`` for the A–B–C session."""
    link = virtual_link(VIRT, SESSION, prev, nxt, ends=("A", "C"), bandwidth=100000)
    body = {"qkdn_id": node_qkdn_id(node), "qkd_links": {"qkd_link": [link]}}
    if with_app:
        body["qkd_applications"] = {"qkd_app": [{
            "app_id": SESSION, "app_type": "etsi-qkd-node-types:CLIENT",
            "server_app_id": "sae-a", "client_app_id": ["sae-c"], "app_priority": 1,
            "backing_qkdl_id": [VIRT], "local_qkdn_id": node_qkdn_id(node),
            "app_qos": {"max_bandwidth": 10_000_000},
            "qkdn-key-manager:km_session": {"role": "source" if node == "A" else "destination",
                                            "idle_timeout": 60},
        }]}
    return {"etsi-qkd-sdn-node:qkd_node": body}


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


@pytest.fixture
def log_text():
    """Every log line of the test at DEBUG, formatted as the node processes write them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_km_events_metrics_and_logs_of_a_relayed_exchange(tmp_path, log_text):
    keys: list[bytes] = []
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("B", "C")], SAES,
                        config=KmConfig(require_controller=True, relay_batch=1)) as net:
        net.feed("A", "B", blocks=4)
        net.feed("B", "C", blocks=4)
        a, b, c = (net.kms[n] for n in "ABC")
        enc_url = a.base_url + "/api/v1/keys/sae-c/enc_keys"
        # the application asks first: the session waits for the controller (503)
        first = client(net, "sae-a").post(enc_url, json={"number": 2}, timeout=10)
        assert first.status_code == 503
        # the controller configures relay first, then the ends
        b.apply_running_config(running_config("B", "A", "C", with_app=False))
        c.apply_running_config(running_config("C", "B", None))
        a.apply_running_config(running_config("A", None, "B"))
        enc = client(net, "sae-a").post(enc_url, json={"number": 2}, timeout=10)
        assert enc.status_code == 200
        dec = client(net, "sae-c").post(c.base_url + "/api/v1/keys/sae-a/dec_keys", json={
            "key_IDs": [{"key_ID": k["key_ID"]} for k in enc.json()["keys"]]}, timeout=10)
        assert dec.status_code == 200
        keys += [base64.b64decode(k["key"]) for k in enc.json()["keys"]]
        # ETSI 004 on the same session, pulled by C through B
        qos = {"key_chunk_size": 32, "timeout": 2000}
        call = lambda sae, node, op, body: client(net, sae).post(
            net.kms[node].base_url + f"/api/v1/etsi004/{op}", json=body, timeout=10).json()
        assert call("sae-a", "A", "open_connect", {"source": "sae-a", "destination": "sae-c",
                                                   "QoS": qos})["status"] in (0, 1)
        assert call("sae-c", "C", "open_connect", {"source": "sae-c", "destination": "sae-a",
                                                   "QoS": qos, "Key_stream_ID": SESSION}
                    )["status"] == 0
        c0 = call("sae-c", "C", "get_key", {"Key_stream_ID": SESSION, "index": 0})
        a0 = call("sae-a", "A", "get_key", {"Key_stream_ID": SESSION, "index": 0})
        assert c0["status"] == a0["status"] == 0 and c0["key_buffer"] == a0["key_buffer"]
        keys.append(base64.b64decode(a0["key_buffer"]))
        unknown = call("sae-a", "A", "get_key", {"Key_stream_ID": str(uuid.uuid4()), "index": 0})
        assert unknown["status"] == 4

        with MetricsServer(a.telemetry.registry) as server:   # a real scrape over HTTP
            plain = requests.Session()
            plain.trust_env = False
            assert server.url.startswith("http://127.0.0.1:")
            scrape_a = plain.get(server.url, timeout=5).text
        from qkdn.metrics import render
        scrape_b, scrape_c = render(b.telemetry.registry), render(c.telemetry.registry)

    # -- events ------------------------------------------------------------------------------
    events = collect_events({n: tmp_path / "nodes" / n for n in "ABC"})
    by_node = {n: [e for e in events if e.node == n] for n in "ABC"}
    kinds = {n: {e.event for e in evs if e.session == SESSION} for n, evs in by_node.items()}
    assert kinds["A"] >= {EventKind.REQUEST, EventKind.AUTHENTICATED, EventKind.PATH_CONFIGURED,
                          EventKind.QKD_KEY_AVAILABLE, EventKind.KEY_RETURNED}
    assert EventKind.RELAY_HOP_RECEIVED not in kinds["A"]      # the source sends, never receives
    assert kinds["B"] == {EventKind.PATH_CONFIGURED, EventKind.QKD_KEY_AVAILABLE,
                          EventKind.RELAY_HOP_RECEIVED}         # a relay: configuration and relay
    assert kinds["C"] >= {EventKind.PATH_CONFIGURED, EventKind.QKD_KEY_AVAILABLE,
                          EventKind.RELAY_HOP_RECEIVED, EventKind.REQUEST, EventKind.KEY_RETURNED}
    # the 014 slave's KM configures the session but authenticates no application of its own
    # until its application asks — here the 004 open at C is after the configuration
    assert EventKind.AUTHENTICATED not in {e.event for e in by_node["C"]
                                           if e.session == SESSION and e.t < min(
                                               x.t for x in by_node["C"]
                                               if x.event is EventKind.REQUEST)}
    # the request that came before the controller's answer is attributed to the session
    a_events = [e for e in by_node["A"] if e.session == SESSION]
    order = [e.event for e in a_events]
    assert order.index(EventKind.REQUEST) < order.index(EventKind.AUTHENTICATED) \
        <= order.index(EventKind.PATH_CONFIGURED) < order.index(EventKind.KEY_RETURNED)
    raw_a = read_events(tmp_path / "nodes" / "A" / EVENTS_FILE)
    pending = next(e for e in raw_a if e.event is EventKind.AUTHENTICATED).detail["pending"]
    assert str(pending).startswith("pending:")
    assert next(e for e in raw_a if e.event is EventKind.REQUEST).session == pending
    hops = [e for e in by_node["B"] if e.event is EventKind.RELAY_HOP_RECEIVED]
    assert {e.detail["role"] for e in hops} == {"relay"} and hops[0].detail["from_node"] == "A"
    link_first = [e for e in by_node["A"] if e.session is None]
    assert [e.event for e in link_first] == [EventKind.QKD_KEY_AVAILABLE]   # one link at A
    assert all(abs(e.t - time.time()) < 120 for e in events)     # wall-clock epoch seconds
    assert (tmp_path / "nodes" / "A" / EVENTS_FILE).stat().st_mode & 0o777 == 0o600

    # -- metrics -----------------------------------------------------------------------------
    assert sample_value(scrape_a, "qkdn_km_requests_total", api="014", operation="enc_keys",
                        outcome="not-authorised-yet") == 1
    assert sample_value(scrape_a, "qkdn_km_requests_total", api="014", operation="enc_keys",
                        outcome="delivered") == 1
    assert sample_value(scrape_a, "qkdn_km_requests_total", api="004", operation="get_key",
                        outcome="success") == 1
    assert sample_value(scrape_a, "qkdn_km_requests_total", api="004", operation="get_key",
                        outcome="no-qkd-connection") == 1
    assert sample_value(scrape_a, "qkdn_km_keys_delivered_total", api="014") == 2
    assert sample_value(scrape_a, "qkdn_km_key_bits_delivered_total", api="004") == 256
    assert sample_value(scrape_a, "qkdn_km_relay_hops_total", role="source") >= 2
    assert sample_value(scrape_b, "qkdn_km_relay_hops_total", role="relay") >= 2
    assert sample_value(scrape_c, "qkdn_km_relay_hops_total", role="destination") >= 2
    assert sample_value(scrape_c, "qkdn_km_keys_delivered_total", api="014") == 2
    assert sample_value(scrape_a, "qkdn_km_sessions", state="operative") == 1
    assert sample_value(scrape_b, "qkdn_km_key_store_bytes", half="outgoing") > 0
    assert sample_value(scrape_a, "qkdn_km_key_store_consumed_bytes_total") > 0
    assert sample_value(scrape_a, "qkdn_km_events_total", event="authenticated") == 1

    # -- no key material anywhere ------------------------------------------------------------
    logs = log_text.getvalue()
    assert f'"session": "{SESSION}"' in logs   # captured, with the session bound by the KM
    texts = [logs, scrape_a, scrape_b, scrape_c] + [
        (tmp_path / "nodes" / n / EVENTS_FILE).read_text() for n in "ABC"]
    for key in keys:
        for spelling in (base64.b64encode(key).decode(), key.hex(), key.hex().upper(),
                         base64.urlsafe_b64encode(key).decode().rstrip("=")):
            assert not any(spelling in text for text in texts), "key material leaked"
