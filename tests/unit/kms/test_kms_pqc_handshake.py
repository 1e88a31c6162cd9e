"""ML-KEM-768 handshake between endpoint KMs, with certificates of a test CA (no sockets)."""

import copy

import pytest

from kms.errors import AuthenticationFailed
from kms.pki import issue_network_pki
from kms.pqc_handshake import KmCredentials, answer_handshake, finish_handshake, start_handshake


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    pki = issue_network_pki(tmp_path_factory.mktemp("pki"), ["A", "B", "C"], {"sae-a": "A"})
    return {n: KmCredentials.load(pki["kms"][n]["cert"], pki["kms"][n]["key"], pki["ca_cert"])
            for n in ("A", "B", "C")}


def test_both_ends_derive_the_same_epoch_secret(creds):
    pending = start_handshake(creds["A"], "s", "sae-a", "sae-b")
    answer, responder = answer_handshake(creds["B"], pending.request, "A", now=1.0)
    initiator = finish_handshake(creds["A"], pending, answer, "B", now=1.0)
    assert initiator.secret == responder.secret and len(initiator.secret) == 32
    again = start_handshake(creds["A"], "s", "sae-a", "sae-b")
    answer2, _ = answer_handshake(creds["B"], again.request, "A", now=2.0)
    assert finish_handshake(creds["A"], again, answer2, "B", 2.0).secret != initiator.secret


def test_responder_refuses_a_wrong_node_or_a_tampered_request(creds):
    pending = start_handshake(creds["A"], "s", "sae-a", "sae-b")
    with pytest.raises(AuthenticationFailed):
        answer_handshake(creds["B"], pending.request, "C", now=0)      # cert is A's, not C's
    tampered = copy.deepcopy(pending.request)
    tampered["slave_SAE_ID"] = "sae-x"
    with pytest.raises(AuthenticationFailed):
        answer_handshake(creds["B"], tampered, "A", now=0)


def test_initiator_refuses_an_answer_from_another_km_or_with_a_swapped_ciphertext(creds):
    pending = start_handshake(creds["A"], "s", "sae-a", "sae-b")
    answer, _ = answer_handshake(creds["B"], pending.request, "A", now=0)
    with pytest.raises(AuthenticationFailed):
        finish_handshake(creds["A"], pending, answer, "C", now=0)       # expected C's KM
    other = start_handshake(creds["A"], "s", "sae-a", "sae-b")
    other_answer, _ = answer_handshake(creds["B"], other.request, "A", now=0)
    swapped = {**answer, "ciphertext": other_answer["ciphertext"]}
    with pytest.raises(AuthenticationFailed):
        finish_handshake(creds["A"], pending, swapped, "B", now=0)     # transcript signature
