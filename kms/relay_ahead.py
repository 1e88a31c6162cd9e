"""When to relay an SAE pair's next keys ahead, in the background (pure policy, no I/O).

An ETSI 014 master's KM keeps a pool of keys relayed ahead for each (master, slave, size):
ready at both ends, released on the pair's next requests. Without relay-ahead a request that
finds the pool short relays the next batch itself and waits for it (~140 ms for 1,000 keys);
with it, the KM relays the next batch in the background as soon as the pool falls below a
low-water mark, so a steady stream of requests finds keys ready.

Bounds (``docs/kms.md``, *Relay-ahead*):

* at most one relay-ahead per pair at a time (the KM holds the pair's relay lock for it, so a
  request that finds the pool empty waits for that batch instead of relaying its own);
* a pair never holds more than ``max_keys`` ready keys through relay-ahead: the batch is cut to
  ``max_keys − ready``;
* a batch never takes more than half of the key the first link holds for sending now: the
  other sessions on that link always keep at least as much as the batch took;
* a batch is at least half of ``batch`` keys (a short one would spend the message's 512 bits
  of MAC key on a few keys): with less key on the link, the pair's requests relay on demand.

Link-key use per message is unchanged: ``|K| + 512`` bits per hop (pad, request and ack MAC
keys), whoever triggers the message.
"""

from __future__ import annotations

from dataclasses import dataclass

#: bytes of link key a relay message takes besides the pad: request + ack MAC keys
MESSAGE_OVERHEAD_BYTES = 64


@dataclass(frozen=True)
class RelayAheadPolicy:
    """Relay-ahead settings of one KM (``KmConfig.relay_ahead_low_water`` etc.)."""

    #: relay ahead when a pair's ready keys fall below this many; 0 = never
    low_water: int
    #: keys per relay-ahead message (the KM's ``relay_batch``, at most ``max_key_per_request``)
    batch: int
    #: most ready keys a pair may hold through relay-ahead (0: ``low_water + batch``)
    max_keys: int = 0

    @property
    def enabled(self) -> bool:
        return self.low_water > 0 and self.batch > 0

    @property
    def cap(self) -> int:
        return self.max_keys or self.low_water + self.batch

    def keys_to_relay(self, ready: int, key_bytes: int, link_bytes: int) -> int:
        """How many keys to relay ahead now for a pair holding ``ready`` keys of
        ``key_bytes`` bytes, whose first link holds ``link_bytes`` bytes to send with (0: none).

        >>> p = RelayAheadPolicy(low_water=1000, batch=1000, max_keys=2000)
        >>> p.keys_to_relay(ready=999, key_bytes=32, link_bytes=10**6)
        1000
        >>> p.keys_to_relay(ready=1500, key_bytes=32, link_bytes=10**6)   # above low water
        0
        >>> p.keys_to_relay(ready=999, key_bytes=32, link_bytes=40_000)   # half the link: 623
        623
        >>> p.keys_to_relay(ready=999, key_bytes=32, link_bytes=20_000)   # < half a batch
        0
        """
        if not self.enabled or ready >= self.low_water or key_bytes <= 0:
            return 0
        count = min(self.batch, self.cap - ready)
        # the message (pad + MAC keys) may take at most half of what the link holds
        affordable = (link_bytes // 2 - MESSAGE_OVERHEAD_BYTES) // key_bytes
        count = min(count, affordable)
        return count if count >= max(1, self.batch // 2) else 0
