"""kms.key_manager.cut_keys: one draw of key material for a batch, cut into its keys."""

import secrets

from kms.key_manager import cut_keys


def test_the_keys_are_the_draw_in_order_and_in_full():
    material = secrets.token_bytes(32 * 50)
    keys = cut_keys(material, 32)
    assert len(keys) == 50 and all(len(k) == 32 for k in keys)
    assert b"".join(keys) == material


def test_no_partial_key_from_a_short_tail():
    assert cut_keys(bytes(7), 3) == [bytes(3), bytes(3)]
    assert cut_keys(b"", 8) == []
