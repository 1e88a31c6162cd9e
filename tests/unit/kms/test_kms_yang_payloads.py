"""What the KM hands the agent (operational state, notifications) validates against yang/."""

import json
import time

import libyang
import pytest

from kms import notifications
from kms.forwarding import build_forwarding_table
from kms.key_store import StoreLevels
from kms.operational_state import build_operational_state
from kms.session import KmSession, SessionEvent
from qkdn.namespaces import YANG_DIR

APP = "11111111-2222-4333-8444-555555555555"
LINK = "88888888-2222-4333-8444-555555555555"
NODE_ID = "00000000-0000-4000-8000-00000000000a"


@pytest.fixture(scope="module")
def ctx():
    c = libyang.Context(str(YANG_DIR))
    for name in ("etsi-qkd-node-types", "etsi-qkd-sdn-node", "qkdn-key-manager"):
        c.load_module(name)
    yield c
    c.destroy()


def running():
    return {"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": NODE_ID,
        "qkdn-key-manager:key_manager": {"key_store_capacity": "8388608"},
        "qkd_applications": {"qkd_app": [{
            "app_id": APP, "server_app_id": "sae-a", "client_app_id": ["sae-b"],
            "qkdn-key-manager:km_session": {"role": "source", "idle_timeout": 30,
                                            "token_bucket": {"bucket_size": 4096, "token_rate": 1024}}}]},
        "qkd_links": {"qkd_link": [{"qkdl_id": LINK, "qkdl_type": "etsi-qkd-node-types:PHYS"}]},
    }}


def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        elif isinstance(v, list) and isinstance(a.get(k), list):
            for item in v:
                key = next(iter(item))
                target = next((x for x in a[k] if x.get(key) == item[key]), None)
                if target is None:
                    a[k].append(item)
                else:
                    merge(target, item)
        else:
            a[k] = v
    return a


def test_operational_state_validates(ctx):
    config = running()
    table = build_forwarding_table(config)
    assert table.key_store_capacity_bits == 8388608
    session = KmSession(APP, frozenset({"sae-a", "sae-b"}), time.time)
    session.configure(30)
    session.fire(SessionEvent.KEY_REQUEST)
    state = build_operational_state({APP: session}, table, [StoreLevels(LINK, 100, 50, 1000, 3, 10, 0)])
    data = merge(running(), state)
    tree = ctx.parse_data_mem(json.dumps(data), "json", strict=True, validate_present=True)
    try:
        out = json.loads(tree.print_mem("json", with_siblings=True))
    finally:
        tree.free()
    app = out["etsi-qkd-sdn-node:qkd_node"]["qkd_applications"]["qkd_app"][0]
    assert app["qkdn-key-manager:km_session"]["state"] == "key-exchanging"
    assert app["app_status"] == "etsi-qkd-node-types:ON"


@pytest.mark.parametrize("body", [
    notifications.application_new("sae-a", ["sae-b"], NODE_ID, 3, {"max_bandwidth": 1000},
                                  interface=notifications.ApplicationInterface.ETSI_004,
                                  key_stream_id=APP, etsi004_qos={"key_chunk_size": 32, "timeout": 0,
                                                                  "metadata_mimetype": "application/json"}),
    notifications.application_disconnected(APP),
    notifications.session_state(APP, "operative", "session configuration received"),
    notifications.key_request(APP, 2, 512, notifications.KeyRequestOutcome.DELIVERED),
    notifications.key_request(APP, 3, 768, notifications.KeyRequestOutcome.DELIVERED,
                              delivered={"qkd": (1, 256), "hybrid": (2, 512)}),
    notifications.key_mode_change(APP, "hybrid", "qkd", "link down"),
])
def test_notifications_validate(ctx, body):
    tree = ctx.parse_op_mem("json", json.dumps(body), libyang.DataType.NOTIF_YANG)
    tree.free()


def test_operational_state_with_provenance_counters_validates(ctx):
    config = running()
    config["etsi-qkd-sdn-node:qkd_node"]["qkd_applications"]["qkd_app"][0][
        "qkdn-key-manager:km_session"]["fallback_policy"] = "pqc-fallback"
    table = build_forwarding_table(config)
    assert table.sessions[APP].fallback_policy == "pqc-fallback"
    session = KmSession(APP, frozenset({"sae-a", "sae-b"}), time.time)
    session.configure(30)
    state = build_operational_state({APP: session}, table, [],
                                    delivered={APP: {"qkd": [2, 512], "pqc": [1, 256]}},
                                    modes={APP: "pqc"})
    tree = ctx.parse_data_mem(json.dumps(merge(config, state)), "json", strict=True,
                              validate_present=True)
    try:
        out = json.loads(tree.print_mem("json", with_siblings=True))
    finally:
        tree.free()
    km = out["etsi-qkd-sdn-node:qkd_node"]["qkd_applications"]["qkd_app"][0][
        "qkdn-key-manager:km_session"]
    assert km["key_mode"] == "pqc"
    assert km["counters"]["keys_delivered"] == "3" and km["counters"]["bits_delivered"] == "768"
    assert km["counters"]["provenance"] == {"qkd_keys": "2", "qkd_bits": "512",
                                            "pqc_keys": "1", "pqc_bits": "256"}
