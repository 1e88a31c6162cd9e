"""A request whose relayed keys concurrent requests of its pair took (keys and surplus) relays
again instead of answering 503; after ``RELAY_RACE_ATTEMPTS`` such losses it answers 503."""

import pytest
import requests

from kms.key_manager import RELAY_RACE_ATTEMPTS, KmConfig
from kms.key_pool import InsufficientKey
from kms.local_network import LocalKmNetwork

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B"}


@pytest.fixture
def net(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], SAES,
                        config=KmConfig(relay_batch=4)) as net:
        net.feed("A", "B", blocks=4)
        yield net


def _enc_keys(net) -> requests.Response:
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert("sae-a"), net.ca
    return s.post(net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys", json={"number": 4},
                  timeout=30)


def _lose_batches(pool, losses: int) -> list[int]:
    """The pool's first ``losses`` take_relayed_for_master calls lose the race (as if every
    relayed key of the batch had been taken concurrently); returns the call sizes."""
    real, calls = pool.take_relayed_for_master, []

    def take(master, slave, key_ids, size_bits, now):
        calls.append(len(key_ids))
        if len(calls) <= losses:
            raise InsufficientKey("relayed keys taken by concurrent requests of the pair")
        return real(master, slave, key_ids, size_bits, now)
    pool.take_relayed_for_master = take
    return calls


def test_request_relays_again_when_its_batch_was_taken(net):
    calls = _lose_batches(net.kms["A"].pool, RELAY_RACE_ATTEMPTS - 1)
    reply = _enc_keys(net)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["keys"]) == 4
    assert calls == [4] * RELAY_RACE_ATTEMPTS


def test_request_gives_up_with_503_after_the_last_attempt(net):
    calls = _lose_batches(net.kms["A"].pool, RELAY_RACE_ATTEMPTS)
    reply = _enc_keys(net)
    assert reply.status_code == 503, reply.text
    assert "key" not in reply.json()
    assert calls == [4] * RELAY_RACE_ATTEMPTS
