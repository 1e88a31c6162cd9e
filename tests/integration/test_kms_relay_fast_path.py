"""The relay's WSGI dispatch (kms.relay_api.RelayRouteDispatch) answers ext_keys, resolve and
control exactly as the Flask blueprint does (statuses and bodies), and a real relay through it
still delivers identical keys at both ends."""

import json
import uuid

import pytest
import requests
from werkzeug.test import EnvironBuilder

from kms.local_network import LocalKmNetwork
from kms.relay_api import RelayRouteDispatch

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B"}
KM_B = {"SSL_CLIENT_VERIFY": "SUCCESS", "SSL_CLIENT_S_DN_CN": "B", "SSL_CLIENT_S_DN_OU": "km"}
SAE = {**KM_B, "SSL_CLIENT_S_DN_CN": "sae-a", "SSL_CLIENT_S_DN_OU": "sae"}
STRANGER = {**KM_B, "SSL_CLIENT_S_DN_CN": "Z"}
KEY = str(uuid.UUID("12345678-1234-4234-8234-123456789abc"))
CASES = [
    ("/relay/v1/ext_keys", b"not json", "application/json", KM_B),
    ("/relay/v1/ext_keys", b"[1]", "application/json", KM_B),
    ("/relay/v1/ext_keys", b'{"session": null}', "text/plain", KM_B),
    ("/relay/v1/ext_keys", b'{"session": null, "keys": []}', "application/json", SAE),
    ("/relay/v1/ext_keys", b'{"session": null, "keys": []}', "application/json", STRANGER),
    ("/relay/v1/ext_keys", b'{"session": null, "keys": []}', "application/json", {}),
    ("/relay/v1/ext_keys", (b'{"session": null, "keys": [], "key_ref": "0:0:64", '
                            b'"ciphertext": "", "mac": "AAAA"}'), "application/json", KM_B),
    ("/relay/v1/ext_keys", json.dumps({"session": "no-such-session", "keys": [{"size": 256}],
                                       "key_ref": "x", "ciphertext": "", "mac": ""}).encode(),
     "application/json", KM_B),
    ("/relay/v1/resolve", json.dumps({"session": None, "key_IDs": [KEY]}).encode(),
     "application/json", KM_B),
    ("/relay/v1/resolve", json.dumps({"session": "no-such-session", "key_IDs": []}).encode(),
     "application/json", KM_B),
    ("/relay/v1/control", json.dumps({"session": None, "op": "nothing"}).encode(),
     "application/json", KM_B),
]


def call(app, path, body, content_type, ident, method="POST"):
    builder = EnvironBuilder(path=path, method=method, data=body, content_type=content_type)
    environ = builder.get_environ()
    environ.update(ident)
    out = {}

    def start_response(status, headers, exc_info=None):
        out["status"] = int(status.split()[0])

    data = b"".join(app(environ, start_response))
    return out["status"], json.loads(data)


@pytest.fixture
def net(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES) as net:
        net.feed("A", "B", blocks=4)
        yield net


@pytest.mark.parametrize("case", range(len(CASES)))
def test_same_answer_as_the_blueprint(net, case):
    path, body, content_type, ident = CASES[case]
    # two KMs' apps with the same state: one answers through the dispatch, one through Flask
    # (resolve tombstones unknown keys, so each side gets its own fresh key ID)
    fast = net.kms["A"].build_app().wsgi_app.fallback
    assert isinstance(fast, RelayRouteDispatch)
    flask_only = fast.fallback
    got = call(fast, path, body, content_type, ident)
    fresh = KEY.encode() in body
    body = body.replace(KEY.encode(), str(uuid.uuid4()).encode())
    want = call(flask_only, path, body, content_type, ident)
    assert got[0] == want[0]
    if fresh and got[0] == 200:
        assert list(got[1]["outcome"].values()) == list(want[1]["outcome"].values()) == ["void"]
    else:
        assert got == want


def test_other_methods_and_paths_reach_flask(net):
    fast = net.kms["A"].build_app().wsgi_app.fallback
    assert call(fast, "/relay/v1/ext_keys", b"", None, KM_B, method="GET")[0] == 405
    assert call(fast, "/relay/v1/nothing", b"{}", "application/json", KM_B)[0] == 404


def test_relay_through_the_dispatch_delivers_identical_keys(net):
    def client(sae):
        s = requests.Session()
        s.trust_env = False
        s.cert, s.verify = net.sae_cert(sae), net.ca
        return s

    r = client("sae-a").post(net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys",
                             json={"number": 3}, timeout=20)
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    got = client("sae-b").post(net.kms["B"].base_url + "/api/v1/keys/sae-a/dec_keys",
                               json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]},
                               timeout=20)
    assert got.status_code == 200 and got.json()["keys"] == keys
