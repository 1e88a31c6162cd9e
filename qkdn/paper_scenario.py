"""The paper's experiment (Fig. 4) as ETSI 014 and ETSI 004 clients run it: symmetric keys
between the applications on nodes 0 and 1, 2 and 3, 4 and 5, requested in parallel.

Each flow is a real client of the network: HTTPS with the SAE's client certificate, the
network CA, and nothing else. No key material is kept beyond the comparison of both ends.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from .sae_client import enc_keys_when_admitted, sae_client

PAPER_PAIRS = (("0", "1"), ("2", "3"), ("4", "5"))
RETRY_S = 0.2


@dataclass
class FlowResult:
    """One pair's outcome through one API (no key material: only whether both ends match)."""

    a: str
    b: str
    api: str  #: "014" | "004"
    keys_match: bool = False
    key_ids: list[str] = field(default_factory=list)
    first_key_s: float | None = None
    error: str = ""


def _digest(key_b64: str) -> str:
    return hashlib.sha256(key_b64.encode()).hexdigest()


def run_etsi014(endpoints: dict[str, Any], a: str, b: str, *, number: int = 4,
                timeout_s: float = 30.0, t0: float) -> FlowResult:
    """enc_keys by the master (SAE on ``a``), dec_keys by the slave (SAE on ``b``)."""
    result = FlowResult(a, b, "014")
    master, slave = sae_client(endpoints, f"sae-{a}"), sae_client(endpoints, f"sae-{b}")
    url_a, url_b = endpoints["nodes"][a]["etsi014"], endpoints["nodes"][b]["etsi014"]
    enc = enc_keys_when_admitted(master, url_a, f"sae-{b}", number=number, size=256,
                                 timeout_s=timeout_s, retry_s=RETRY_S)
    if enc.status_code != 200:
        result.error = f"enc_keys {enc.status_code}: {enc.json().get('message', '')}"
        return result
    result.first_key_s = time.monotonic() - t0
    keys = enc.json()["keys"]
    dec = slave.post(f"{url_b}/sae-{a}/dec_keys",
                     json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]},
                     timeout=timeout_s)
    if dec.status_code != 200:
        result.error = f"dec_keys {dec.status_code}: {dec.json().get('message', '')}"
        return result
    mine = {k["key_ID"]: _digest(k["key"]) for k in keys}
    theirs = {k["key_ID"]: _digest(k["key"]) for k in dec.json()["keys"]}
    result.key_ids = sorted(mine)
    result.keys_match = mine == theirs and len(mine) == number
    return result


def run_etsi004(endpoints: dict[str, Any], a: str, b: str, *, keys: int = 4,
                timeout_s: float = 30.0, t0: float) -> FlowResult:
    """OPEN_CONNECT at both ends (one Key_stream_ID), GET_KEY of the same indices, CLOSE."""
    result = FlowResult(a, b, "004")
    clients = {a: sae_client(endpoints, f"sae-{a}"), b: sae_client(endpoints, f"sae-{b}")}
    base = {n: endpoints["nodes"][n]["etsi004"] for n in (a, b)}
    qos = {"key_chunk_size": 32, "timeout": int(timeout_s * 1000), "priority": 1}

    def call(node: str, name: str, body: dict) -> dict:
        reply = clients[node].post(f"{base[node]}/{name}", json=body, timeout=timeout_s + 5)
        reply.raise_for_status()
        return reply.json()

    # both applications start on their own, as real peers do: with a controller, neither
    # OPEN_CONNECT completes before the other has asked (admission waits for the peer)
    with ThreadPoolExecutor(max_workers=2) as pool:
        opens = {node: pool.submit(call, node, "open_connect", {
            "source": f"sae-{node}", "destination": f"sae-{peer}", "QoS": qos,
            "Key_stream_ID": None}) for node, peer in ((a, b), (b, a))}
        answers = {node: future.result() for node, future in opens.items()}
    for node, answer in answers.items():
        if answer["status"] not in (0, 1):
            result.error = f"OPEN_CONNECT at {node}: status {answer['status']}"
            return result
    ksid = answers[a]["Key_stream_ID"]
    if answers[b]["Key_stream_ID"] != ksid:
        result.error = "the peers were given different Key_stream_IDs"
        return result
    try:
        digests: dict[str, list[str]] = {a: [], b: []}
        indices: list[int] = []
        index = 0
        deadline = time.monotonic() + timeout_s
        while len(indices) < keys:
            got = {}
            for node in (a, b):
                got[node] = call(node, "get_key", {"Key_stream_ID": ksid, "index": index,
                                                   "metadata_size": 1024})
                if got[node]["status"] != 0:
                    break
            statuses = {node: reply["status"] for node, reply in got.items()}
            if any(status != 0 for status in statuses.values()):
                # 2 = insufficient key for this index: an application tries the next index
                # (at both ends, so they stay in step); any other status is an error
                if set(statuses.values()) - {0, 2} or time.monotonic() > deadline:
                    result.error = f"GET_KEY {index}: statuses {statuses}"
                    return result
                index += 1
                time.sleep(RETRY_S)
                continue
            if result.first_key_s is None:
                result.first_key_s = time.monotonic() - t0
            for node in (a, b):
                digests[node].append(_digest(got[node]["key_buffer"]))
            indices.append(index)
            index += 1
        result.key_ids = [f"{ksid}#{i}" for i in indices]
        result.keys_match = digests[a] == digests[b]
    finally:
        for node in (a, b):
            try:
                call(node, "close", {"Key_stream_ID": ksid})
            except requests.RequestException:
                pass
    return result


def run_paper_scenario(endpoints: dict[str, Any], pairs=PAPER_PAIRS, *,
                       after_each_api: Callable[[], None] = lambda: None) -> list[FlowResult]:
    """Every pair at once through ETSI 004, then every pair at once through ETSI 014;
    ``after_each_api`` runs after each API's flows.

    004 goes first: a 004 stream's CLOSE ends its session, so the 014 requests that follow
    open sessions of their own. (The other order lets a 004 stream join the pair's open 014
    session, whose pre-relayed keys occupy the stream's first indices — a KM limitation
    recorded in the issue.)"""
    t0 = time.monotonic()
    results = []
    for flow in (run_etsi004, run_etsi014):
        with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
            futures = [pool.submit(_guarded, flow, endpoints, a, b, t0) for a, b in pairs]
            results.extend(f.result() for f in futures)
        after_each_api()
    return results


def _guarded(flow, endpoints, a, b, t0) -> FlowResult:
    try:
        return flow(endpoints, a, b, t0=t0)
    except (requests.RequestException, ValueError, KeyError) as exc:
        return FlowResult(a, b, "014" if flow is run_etsi014 else "004",
                          error=f"{type(exc).__name__}: {exc}")
