"""The thin WSGI dispatch of enc_keys/dec_keys (kms/etsi014_fast_path.py) answers exactly as
the Flask blueprint does: same statuses and bodies for every malformed or refused request, the
same key container shape, and everything else still reaches Flask."""

import json

import pytest

from kms.etsi014_fast_path import KeyRouteDispatch
from kms.local_network import LocalKmNetwork

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B"}
A = {"SSL_CLIENT_VERIFY": "SUCCESS", "SSL_CLIENT_S_DN_CN": "sae-a", "SSL_CLIENT_S_DN_OU": "sae"}
B = {**A, "SSL_CLIENT_S_DN_CN": "sae-b"}
KM = {**A, "SSL_CLIENT_S_DN_CN": "A", "SSL_CLIENT_S_DN_OU": "km"}


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    with LocalKmNetwork(tmp_path_factory.mktemp("fast"), ["A", "B"], [("A", "B")], SAES) as net:
        net.feed("A", "B", blocks=4)
        fast = net.kms["A"].build_app()
        assert isinstance(fast.wsgi_app, KeyRouteDispatch)
        flask_only = net.kms["A"].build_app()
        flask_only.wsgi_app = flask_only.wsgi_app.fallback
        slave_fast, slave_flask = net.kms["B"].build_app(), net.kms["B"].build_app()
        slave_flask.wsgi_app = slave_flask.wsgi_app.fallback
        yield net, fast, flask_only, slave_fast, slave_flask


ENC = "/api/v1/keys/sae-b/enc_keys"
CASES = [
    ("POST", ENC, b"not json", "application/json", A),
    ("POST", ENC, b'{"number": 1}', "text/plain", A),
    ("POST", ENC, b"[1, 2]", "application/json", A),
    ("POST", ENC, b'{"number": "x"}', "application/json", A),
    ("POST", ENC, b'{"number": true}', "application/json", A),
    ("POST", ENC, b'{"number": 0}', "application/json", A),
    ("POST", ENC, b'{"size": 7}', "application/json", A),
    ("POST", ENC, b'{"extension_mandatory": [{"x": 1}]}', "application/json", A),
    ("POST", ENC, b'{"additional_slave_SAE_IDs": "sae-c"}', "application/json", A),
    ("POST", ENC, b'{"additional_slave_SAE_IDs": ["nobody"]}', "application/json", A),
    ("POST", ENC, b'{"number": 1}', "application/json", {}),
    ("POST", ENC, b'{"number": 1}', "application/json", KM),
    ("POST", "/api/v1/keys/nobody/enc_keys", b'{"number": 1}', "application/json", A),
    ("GET", ENC + "?number=abc", b"", None, A),
    ("GET", ENC + "?number=", b"", None, A),
    ("GET", ENC + "?size=12&number=1", b"", None, A),
    ("GET", ENC + "?number=2000", b"", None, A),
    ("POST", "/api/v1/keys/sae-a/dec_keys", b'{"key_IDs": [{"key_ID": "k"}]}', "application/json", A),
]
DEC = "/api/v1/keys/sae-a/dec_keys"
DEC_CASES = [
    ("POST", DEC, b'{"key_IDs": "k"}', "application/json", B),
    ("POST", DEC, b'{"key_IDs": [{"key_ID": "k"}, {"key_ID": "k"}]}', "application/json", B),
    ("POST", DEC, b'{"key_IDs": [{"key_ID": "no-such-key"}]}', "application/json", B),
    ("POST", DEC, b'{"key_IDs": []}', "application/json", B),
    ("GET", DEC + "?key_ID=a&key_ID=a", b"", None, B),
    ("GET", DEC + "?key_ID=no-such-key", b"", None, B),
    ("GET", DEC, b"", None, B),
    ("PUT", DEC, b"", None, B),             # not ours: Flask's 405 either way
    ("POST", DEC + "/", b"{}", "application/json", B),   # not ours: 404
]


def answer(app, method, path, body, content_type, env):
    kwargs = {"data": body, "environ_overrides": env}
    if content_type:
        kwargs["content_type"] = content_type
    r = app.test_client().open(path, method=method, **kwargs)
    return r.status_code, r.get_data()


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[1]} {c[2][:30]!r}" for c in CASES])
def test_enc_keys_errors_identical(apps, case):
    _, fast, flask_only, _, _ = apps
    assert answer(fast, *case) == answer(flask_only, *case)
    assert answer(fast, *case)[0] in (400, 401)


@pytest.mark.parametrize("case", DEC_CASES, ids=[f"{c[0]} {c[1]} {c[2][:30]!r}" for c in DEC_CASES])
def test_dec_keys_errors_identical(apps, case):
    _, _, _, slave_fast, slave_flask = apps
    assert answer(slave_fast, *case) == answer(slave_flask, *case)


def test_success_bodies_have_the_same_shape(apps):
    _, fast, flask_only, slave_fast, slave_flask = apps
    for app in (fast, flask_only):
        status, data = answer(app, "POST", ENC, b'{"number": 2, "size": 128}',
                              "application/json", A)
        assert status == 200 and data.endswith(b"\n") and b": " not in data
        keys = json.loads(data)["keys"]
        assert len(keys) == 2 and set(keys[0]) == {"key_ID", "key", "key_extension"}
        ids = "&".join(f"key_ID={k['key_ID']}" for k in keys)
        slave = slave_fast if app is fast else slave_flask
        status, got = answer(slave, "GET", DEC + "?" + ids, b"", None, B)
        assert status == 200 and json.loads(got)["keys"] == keys
    status, data = answer(fast, "GET", "/api/v1/keys/sae-b/status", b"", None, A)
    assert status == 200 and json.loads(data)["slave_SAE_ID"] == "sae-b"   # Flask, unchanged
