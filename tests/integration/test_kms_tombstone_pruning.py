"""The KM's housekeeping prunes tombstones of released 014 keys at both ends; the pruned
key_IDs stay refused (dec_keys, a late relay copy) and fresh keys flow as before."""

import pytest
import requests

from kms.errors import RelayError
from kms.key_manager import KmConfig
from kms.key_pool import KeyRecord, key_id_time_ms
from kms.local_network import LocalKmNetwork

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B"}
RETENTION_S = 60.0


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert = net.sae_cert(sae)
    s.verify = net.ca
    return s


def enc_dec(net, a, b, number):
    r = a.post(net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys", json={"number": number},
               timeout=5)
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    ids = [{"key_ID": k["key_ID"]} for k in keys]
    r = b.post(net.kms["B"].base_url + "/api/v1/keys/sae-a/dec_keys", json={"key_IDs": ids},
               timeout=5)
    assert r.status_code == 200 and r.json()["keys"] == keys
    return keys


def test_housekeeping_prunes_released_keys_and_they_stay_refused(tmp_path):
    config = KmConfig(tombstone_retention_s=RETENTION_S)
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES, config=config) as net, \
            client(net, "sae-a") as a, client(net, "sae-b") as b:
        net.feed("A", "B", blocks=8)
        keys = enc_dec(net, a, b, 5)
        newest = max(key_id_time_ms(k["key_ID"]) for k in keys) / 1000
        for km in net.kms.values():        # as if the retention had passed since they were made
            km.wall_clock = lambda: newest + 0.001 + RETENTION_S
            km._next_prune = 0.0
            km.tick()
        for node in ("A", "B"):
            pool = net.kms[node].pool
            assert pool.horizon()[0] >= newest * 1000
            left = {k for (k,) in pool._conn.execute("SELECT key_id FROM keys")}
            assert not left & {k["key_ID"] for k in keys}
        r = b.post(net.kms["B"].base_url + "/api/v1/keys/sae-a/dec_keys",
                   json={"key_IDs": [{"key_ID": keys[0]["key_ID"]}]}, timeout=5)
        assert r.status_code == 400                  # a second fetch: refused as before
        late = KeyRecord(keys[0]["key_ID"], "sae-a", "sae-b", b"\0" * 32)
        with pytest.raises(RelayError):              # a late relay copy: refused as before
            net.kms["B"].pool.store_ready([late], master_local=False, slave_local=True, now=0)
        assert len(enc_dec(net, a, b, 3)) == 3       # fresh key_IDs are above the watermark
