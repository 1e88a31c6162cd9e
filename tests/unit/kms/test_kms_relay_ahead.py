"""Relay-ahead policy (kms.relay_ahead): low-water mark, per-pair cap, half-the-link bound."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from kms.key_manager import new_key_ids
from kms.relay_ahead import MESSAGE_OVERHEAD_BYTES, RelayAheadPolicy


def test_off_when_low_water_is_zero():
    assert not RelayAheadPolicy(0, 1000).enabled
    assert RelayAheadPolicy(0, 1000).keys_to_relay(0, 32, 10**9) == 0


def test_relays_a_batch_below_low_water_only():
    p = RelayAheadPolicy(low_water=100, batch=100)
    assert p.keys_to_relay(99, 32, 10**9) == 100
    assert p.keys_to_relay(100, 32, 10**9) == 0
    assert p.cap == 200


def test_batch_cut_to_the_pair_cap():
    p = RelayAheadPolicy(low_water=100, batch=100, max_keys=150)
    assert p.keys_to_relay(90, 32, 10**9) == 60
    assert p.keys_to_relay(0, 32, 10**9) == 100
    assert p.keys_to_relay(99, 32, 10**9) == 51
    assert RelayAheadPolicy(100, 100, 140).keys_to_relay(99, 32, 10**9) == 0   # 41 < half a batch


def test_never_more_than_half_the_link():
    p = RelayAheadPolicy(low_water=1000, batch=1000)
    link = 40_000
    n = p.keys_to_relay(0, 32, link)
    assert n == (link // 2 - MESSAGE_OVERHEAD_BYTES) // 32
    assert n * 32 + MESSAGE_OVERHEAD_BYTES <= link // 2
    assert p.keys_to_relay(0, 32, 100) == 0


@given(ready=st.integers(0, 5000), low=st.integers(0, 3000), batch=st.integers(1, 1000),
       cap=st.integers(0, 6000), key_bytes=st.sampled_from([8, 32, 128, 1024]),
       link=st.integers(0, 10**7))
def test_bounds_hold_for_any_state(ready, low, batch, cap, key_bytes, link):
    p = RelayAheadPolicy(low, batch, cap)
    n = p.keys_to_relay(ready, key_bytes, link)
    assert 0 <= n <= batch
    if n:
        assert ready < low                                   # only below the low-water mark
        assert n >= max(1, batch // 2)                       # never a wasteful short message
        assert ready + n <= p.cap                            # the pair's cap
        assert n * key_bytes + MESSAGE_OVERHEAD_BYTES <= link // 2   # half the link at most


def test_new_key_ids_are_distinct_time_ordered_version_7_uuids():
    ids = new_key_ids(2000)
    assert len(set(ids)) == 2000
    for key_id in ids:
        parsed = uuid.UUID(key_id)
        assert str(parsed) == key_id and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    earlier, later = new_key_ids(3, now_ms=1_700_000_000_000), new_key_ids(3, 1_700_000_000_001)
    assert max(earlier) < min(later)                         # ordered by their millisecond
    assert {uuid.UUID(k).int >> 80 for k in earlier} == {1_700_000_000_000}
