"""Hybrid KDF and fallback policy (pure)."""

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kms.hybrid_kdf import (
    KDF_SALT,
    FallbackPolicy,
    Provenance,
    derive_key,
    epoch_secret,
    fallback_mode,
    key_message_tag,
    mode_allowed,
    more_restrictive,
    parse_policy,
)

Q, P = bytes(range(32)), bytes(range(32, 64))


def test_kdf_matches_rfc5869_hkdf_over_both_secrets_and_the_labelled_context():
    expected = HKDF(hashes.SHA256(), 32, KDF_SALT,
                    b"qkdn/key/v1\x00s1\x00k1\x00hybrid\x00256").derive(Q + P)
    assert derive_key(Q, P, "s1", "k1", Provenance.HYBRID, 256) == expected


def test_kdf_output_depends_on_every_input():
    base = derive_key(Q, P, "s", "k", Provenance.HYBRID, 256)
    assert derive_key(bytes(32), P, "s", "k", Provenance.HYBRID, 256) != base
    assert derive_key(Q, bytes(32), "s", "k", Provenance.HYBRID, 256) != base
    assert derive_key(Q, P, "s2", "k", Provenance.HYBRID, 256) != base
    assert derive_key(Q, P, "s", "k2", Provenance.HYBRID, 256) != base
    assert derive_key(b"", P, "s", "k", Provenance.PQC, 256) != base
    assert derive_key(Q, P, "s", "k", Provenance.HYBRID, 512)[:32] != base


@pytest.mark.parametrize("args", [
    (b"", P, Provenance.HYBRID, 256),        # hybrid without a seed
    (Q, P, Provenance.PQC, 256),             # pqc with a seed
    (Q, P, Provenance.QKD, 256),             # qkd keys are not derived
    (Q, b"short", Provenance.HYBRID, 256),
    (Q, P, Provenance.HYBRID, 12),
])
def test_kdf_refuses_inconsistent_inputs(args):
    seed, secret, provenance, size = args
    with pytest.raises(ValueError):
        derive_key(seed, secret, "s", "k", provenance, size)


def test_policy_modes_and_restriction_order():
    assert fallback_mode(FallbackPolicy.QKD_ONLY) is None
    assert fallback_mode(FallbackPolicy.HYBRID) is Provenance.HYBRID
    assert fallback_mode(FallbackPolicy.PQC_FALLBACK) is Provenance.PQC
    assert not mode_allowed(FallbackPolicy.HYBRID, Provenance.PQC)
    assert not mode_allowed(FallbackPolicy.QKD_ONLY, Provenance.HYBRID)
    assert mode_allowed(FallbackPolicy.QKD_ONLY, Provenance.QKD)
    for a in FallbackPolicy:
        for b in FallbackPolicy:
            assert more_restrictive(a, b) == more_restrictive(b, a)
    assert more_restrictive(FallbackPolicy.PQC_FALLBACK, FallbackPolicy.QKD_ONLY) is \
        FallbackPolicy.QKD_ONLY
    assert parse_policy(None) is FallbackPolicy.QKD_ONLY
    assert parse_policy("qkdn-km:hybrid") is FallbackPolicy.HYBRID


def test_epoch_secret_and_key_message_tag_are_keyed():
    p = epoch_secret(b"ss" * 16, b"T" * 32)
    assert p != epoch_secret(b"ss" * 16, b"U" * 32) and len(p) == 32
    assert key_message_tag(p, b"m") != key_message_tag(p, b"n")
    assert key_message_tag(p, b"m") != key_message_tag(epoch_secret(b"x" * 32, b"T" * 32), b"m")
