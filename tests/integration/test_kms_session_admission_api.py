"""The per-session admission of the 014 key calls (``kms.etsi014_fast_path``): with a pair's
bound reached, its next call is a 503 with ``Retry-After`` before any key work, and another
pair is served; once a call finishes, the pair is served again."""

import pytest

from kms.etsi014_fast_path import KeyRouteDispatch, pair_key
from kms.local_network import LocalKmNetwork
from kms.session_admission import SessionAdmission

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B", "sae-c": "A", "sae-d": "B"}


def env(sae):
    return {"SSL_CLIENT_VERIFY": "SUCCESS", "SSL_CLIENT_S_DN_CN": sae, "SSL_CLIENT_S_DN_OU": "sae"}


def test_pair_over_its_bound_is_refused_before_any_key_work(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES) as net:
        net.feed("A", "B", blocks=4)
        app = net.kms["A"].build_app()
        dispatch = app.wsgi_app
        assert isinstance(dispatch, KeyRouteDispatch)
        dispatch.admission = SessionAdmission(per_session=1)
        client = app.test_client()
        released_before = net.kms["A"].pool.counts().get("released", 0)
        with dispatch.admission.admit(pair_key("sae-b", "sae-a")):   # one call in progress
            r = client.post("/api/v1/keys/sae-b/enc_keys", json={"number": 1},
                            environ_overrides=env("sae-a"))
            assert r.status_code == 503
            assert r.json == {"message": "SAE pair sae-a, sae-b: more than 1 requests at once"}
            assert r.headers["Retry-After"] == "1"
            assert net.kms["A"].pool.counts().get("released", 0) == released_before
            other = client.post("/api/v1/keys/sae-d/enc_keys", json={"number": 1},
                                environ_overrides=env("sae-c"))
            assert other.status_code == 200
        again = client.post("/api/v1/keys/sae-b/enc_keys", json={"number": 1},
                            environ_overrides=env("sae-a"))
        assert again.status_code == 200
        assert dispatch.admission.sessions == 0 and dispatch.admission.refused == 1
