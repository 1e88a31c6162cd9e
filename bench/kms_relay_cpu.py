"""CPU per key of the KM relay: 1,000-key relay messages A→B between two in-process KMs
(real cheroot servers, mutual TLS, SQLite stores with synchronous=FULL), so that one
``time.process_time`` covers both ends of the hop; the client is idle meanwhile.

``python -m bench.kms_relay_cpu [--relays 10] [--batch 1000]`` prints the median CPU µs per
key over ``--relays`` relays (after two warm-up ones) and every relay's figure. Not part of
``make bench`` (no row); the figure ``docs/benchmarks.md`` compares across versions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from bench.kms_bench import _tmp
from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork


def relay_cpu_us_per_key(relays: int = 10, batch: int = 1000) -> list[float]:
    """CPU µs per key (both KMs) of each of ``relays`` relays of ``batch`` keys."""
    config = KmConfig(relay_batch=batch, max_key_per_request=max(batch, 1000))
    with LocalKmNetwork(_tmp(), ["A", "B"], [("A", "B")], {"sae-a": "A", "sae-b": "B"},
                        config=config) as net:
        net.feed("A", "B", blocks=120, size=65536)
        a = net.kms["A"]
        s = requests.Session()
        s.trust_env = False
        s.cert, s.verify = net.sae_cert("sae-a"), net.ca
        s.post(a.base_url + "/api/v1/keys/sae-b/enc_keys", json={"number": 1},
               timeout=30).raise_for_status()   # opens the pair's session
        route = a.route_for("sae-a", "sae-b", a.session_for_pair("sae-a", "sae-b"))
        out = []
        for i in range(relays + 2):
            start = time.process_time()
            a._relay_fresh("sae-a", "sae-b", 256, route, time.time(), batch, batch)
            if i >= 2:
                out.append((time.process_time() - start) / batch * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kms_relay_cpu")
    parser.add_argument("--relays", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    per_key = relay_cpu_us_per_key(args.relays, args.batch)
    print(f"relay CPU per key (both KMs): median {statistics.median(per_key):.1f} us; "
          f"each: {[round(x, 1) for x in per_key]}")


if __name__ == "__main__":
    main()
