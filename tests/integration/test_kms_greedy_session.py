"""A session over its token bucket is refused cheaply and held back (docs/reliability.md,
item 7), on two real KMs over HTTPS: the 014 refusal is a 503 with ``Retry-After``, sent at
once, and the same connection's next request is read only when the bucket could serve it,
while another session's requests are answered as usual."""

import http.client
import json
import ssl
import time
import uuid

import pytest

from kms.https_server import MAX_HOLD_S
from kms.local_network import LocalKmNetwork, link_id, node_qkdn_id

pytestmark = pytest.mark.integration

SAES = {"sae-g": "A", "sae-h": "B", "sae-p": "A", "sae-q": "B"}
RATE, BUCKET = 256, 2048           # bit/s, bits: after the burst one 1,024-bit request per 4 s


def running(node: str, sessions: list[dict]) -> dict:
    peer = "B" if node == "A" else "A"
    apps = []
    for s in sessions:
        km_session = {"role": "source" if node == "A" else "destination"}
        if s.get("token_rate"):
            km_session["token_bucket"] = {"token_rate": s["token_rate"],
                                          "bucket_size": s["bucket_size"]}
        apps.append({"app_id": s["app_id"], "server_app_id": s["master"],
                     "client_app_id": [s["slave"]], "backing_qkdl_id": [link_id("A", "B")],
                     "remote_qkdn_id": node_qkdn_id(peer),
                     "qkdn-key-manager:km_session": km_session})
    return {"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": node_qkdn_id(node), "qkd_applications": {"qkd_app": apps},
        "qkd_links": {"qkd_link": [{"qkdl_id": link_id("A", "B"),
                                    "qkdl_type": "etsi-qkd-node-types:PHYS",
                                    "qkdl_remote": {"qkdn_id": node_qkdn_id(peer)}}]}}}


def sae_connection(net: LocalKmNetwork, sae: str) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=net.ca)
    context.load_cert_chain(*net.sae_cert(sae))
    url = net.kms["A"].base_url.rsplit(":", 1)
    return http.client.HTTPSConnection("127.0.0.1", int(url[1]), context=context, timeout=10)


def enc_keys(conn, slave: str) -> tuple[int, dict, dict, float]:
    body = json.dumps({"number": 2, "size": 512}).encode()
    t0 = time.monotonic()
    conn.request("POST", f"/api/v1/keys/{slave}/enc_keys", body,
                 {"Content-Type": "application/json"})
    answer = conn.getresponse()
    data = json.loads(answer.read())
    return answer.status, data, dict(answer.getheaders()), time.monotonic() - t0


def test_refused_at_once_then_held_until_the_bucket_could_serve(tmp_path):
    sessions = [{"app_id": str(uuid.uuid4()), "master": "sae-g", "slave": "sae-h",
                 "token_rate": RATE, "bucket_size": BUCKET},
                {"app_id": str(uuid.uuid4()), "master": "sae-p", "slave": "sae-q"}]
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES) as net:
        for node in ("A", "B"):
            net.kms[node].apply_running_config(running(node, sessions))
        net.feed("A", "B", blocks=8)
        greedy, polite = sae_connection(net, "sae-g"), sae_connection(net, "sae-p")
        assert enc_keys(polite, "sae-q")[0] == 200         # relays a batch ahead
        assert enc_keys(greedy, "sae-h")[0] == 200         # the bucket's 2,048 bits
        for _ in range(5):              # the bucket refills while the machine is slow
            status, body, headers, _ = enc_keys(greedy, "sae-h")
            if status != 200:
                break
        refused_at = time.monotonic()
        assert status == 503 and "key rate above the agreed" in body["message"]
        assert int(headers["Retry-After"]) >= 2            # ≈ 4 s, in whole seconds
        # another session is not held: answered at once while the greedy one waits
        status, _, _, seconds = enc_keys(polite, "sae-q")
        assert status == 200 and seconds < 0.3, seconds
        # the greedy connection's next request waits for the bucket (capped at MAX_HOLD_S)
        status, _, _, _ = enc_keys(greedy, "sae-h")
        waited = time.monotonic() - refused_at
        assert MAX_HOLD_S - 0.1 <= waited < MAX_HOLD_S + 1, waited   # held, at most 1 s
        assert status == 503
        greedy.close()
        polite.close()
