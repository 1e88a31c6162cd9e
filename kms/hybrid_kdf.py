"""Key provenance, fallback policy decisions and the hybrid KDF (pure; see ADR 0009).

A delivered key is ``qkd`` (end-to-end QKD key), ``hybrid`` (derived from a QKD seed and a
post-quantum epoch secret: secret if either holds) or ``pqc`` (post-quantum secret only).
Which one a session may receive when QKD key is short is its :class:`FallbackPolicy`
(``qkdn.sla``), the more restrictive of both ends' SLAs.

    >>> fallback_mode(FallbackPolicy.HYBRID)
    <Provenance.HYBRID: 'hybrid'>
    >>> fallback_mode(FallbackPolicy.QKD_ONLY) is None
    True
    >>> k = derive_key(b"Q" * 32, b"P" * 32, "s", "k", Provenance.HYBRID, 256)
    >>> len(k), k == derive_key(b"Q" * 32, b"P" * 32, "s", "k", Provenance.HYBRID, 256)
    (32, True)
"""

from __future__ import annotations

import enum
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from kms.errors import BadRequest
from qkdn.sla import FallbackPolicy

__all__ = [
    "KDF_SALT",
    "SEED_BYTES",
    "FallbackPolicy",
    "Provenance",
    "derive_key",
    "epoch_secret",
    "fallback_mode",
    "key_message_tag",
    "mode_allowed",
    "more_restrictive",
    "parse_policy",
]

#: HKDF salt of every derived key (a domain separator; the secrets are in the IKM).
KDF_SALT = b"qkdn-hybrid-kdf-v1"
KEY_INFO_LABEL = b"qkdn/key/v1"
AUTH_INFO_LABEL = b"qkdn/pqc-auth/v1"
#: bytes of QKD key carried end to end as the QKD part of a hybrid request
SEED_BYTES = 32


class Provenance(str, enum.Enum):
    """Where a delivered key comes from (wire value in 014 ``key_extension`` and 004)."""

    QKD = "qkd"
    HYBRID = "hybrid"
    PQC = "pqc"


#: order of restriction: a session gets the more restrictive policy of its two ends
_RESTRICTION = {FallbackPolicy.QKD_ONLY: 0, FallbackPolicy.HYBRID: 1,
                FallbackPolicy.PQC_FALLBACK: 2}


def parse_policy(value: object) -> FallbackPolicy:
    """A wire/config value → policy (absent = ``qkd-only``)."""
    if value is None or value == "":
        return FallbackPolicy.QKD_ONLY
    try:
        return FallbackPolicy(str(value).split(":", 1)[-1])
    except ValueError:
        raise BadRequest(f"unknown fallback policy {value!r}") from None


def more_restrictive(a: FallbackPolicy, b: FallbackPolicy) -> FallbackPolicy:
    """The policy both ends accept.

    >>> more_restrictive(FallbackPolicy.HYBRID, FallbackPolicy.QKD_ONLY).value
    'qkd-only'
    >>> more_restrictive(FallbackPolicy.PQC_FALLBACK, FallbackPolicy.HYBRID).value
    'hybrid'
    """
    return a if _RESTRICTION[FallbackPolicy(a)] <= _RESTRICTION[FallbackPolicy(b)] else b


def fallback_mode(policy: FallbackPolicy) -> Provenance | None:
    """What the KM delivers under ``policy`` when QKD key is short (None: nothing)."""
    return {FallbackPolicy.QKD_ONLY: None, FallbackPolicy.HYBRID: Provenance.HYBRID,
            FallbackPolicy.PQC_FALLBACK: Provenance.PQC}[FallbackPolicy(policy)]


def mode_allowed(policy: FallbackPolicy, provenance: Provenance) -> bool:
    """May a session with ``policy`` receive keys of ``provenance``?"""
    return provenance is Provenance.QKD or fallback_mode(policy) is provenance


def _info(session: str, key_id: str, provenance: Provenance, size_bits: int) -> bytes:
    return b"\x00".join([KEY_INFO_LABEL, session.encode(), key_id.encode(),
                         Provenance(provenance).value.encode(), str(size_bits).encode()])


def derive_key(qkd_seed: bytes, pqc_secret: bytes, session: str, key_id: str,
               provenance: Provenance, size_bits: int) -> bytes:
    """``K = HKDF-SHA256(salt=KDF_SALT, ikm=Q || P, info=label|session|key_ID|provenance|size)``.

    ``qkd_seed`` (Q) is empty for ``pqc`` and :data:`SEED_BYTES` long for ``hybrid``;
    ``pqc_secret`` (P) is the session's epoch secret.
    """
    provenance = Provenance(provenance)
    if provenance is Provenance.QKD:
        raise ValueError("QKD keys are not derived")
    if provenance is Provenance.HYBRID and len(qkd_seed) < SEED_BYTES:
        raise ValueError("a hybrid key needs a QKD seed")
    if provenance is Provenance.PQC and qkd_seed:
        raise ValueError("a pqc key has no QKD seed")
    if len(pqc_secret) < 32:
        raise ValueError("the post-quantum secret must hold at least 32 bytes")
    if size_bits <= 0 or size_bits % 8 or size_bits > 255 * 256:
        raise ValueError("size_bits must be a positive multiple of 8 (at most 65280)")
    return HKDF(algorithm=hashes.SHA256(), length=size_bits // 8, salt=KDF_SALT,
                info=_info(session, key_id, provenance, size_bits)).derive(qkd_seed + pqc_secret)


def epoch_secret(shared_secret: bytes, transcript_hash: bytes) -> bytes:
    """``P = HKDF-Extract(salt=T, ikm=ss)``: the epoch's PQC secret, bound to the transcript."""
    return hmac.new(transcript_hash, shared_secret, hashlib.sha256).digest()


def key_message_tag(epoch_secret_bytes: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of a key message with ``A = HKDF-Expand(P, "qkdn/pqc-auth/v1", 32)``."""
    auth = HKDFExpand(algorithm=hashes.SHA256(), length=32,
                      info=AUTH_INFO_LABEL).derive(epoch_secret_bytes)
    return hmac.new(auth, message, hashlib.sha256).digest()
