"""Item 8: idle ETSI 004 sessions with a 5 s idle timeout (``km_session/idle_timeout``) are
all closed within 6 s of going idle, and every reserved resource returns to its baseline.

A KM pair (in-process, so its state can be inspected) gets every session configured as the
controller would, all at once; every stream is opened at both ends, concurrently; once all are
open, one configuration edit (as the controller's) gives every session its 5 s idle timeout,
so that all of them go idle at the same moment; then nobody speaks.
Checked: the expiry time of every session (from the KM's own transition record), the 004
streams, token buckets, ready keys, sessions (once the controller removes the configuration,
as it does on ``sdqkdn_application_disconnected``), threads and open file descriptors.

Short run: 50 sessions (``make test``); slow run: 500. Figures: item idle_sessions.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from kms.https_server import DEFAULT_READ_DEADLINE_S
from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork
from kms.session import SessionEvent, SessionState

from . import km_load, reliability_report

pytestmark = pytest.mark.integration

IDLE_TIMEOUT_S = 5
#: the issue's figure: 500 idle sessions
LONG_SESSIONS = 500
#: concurrent clients opening the streams
OPENERS = 16


#: open file descriptors allowed above the baseline at the end (the process's own odds and ends)
FDS_SLACK = 4


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _resources(net: LocalKmNetwork) -> dict[str, int]:
    out = {"threads": threading.active_count(), "fds": _fds()}
    for node, km in net.kms.items():
        live = [s for s in km.sessions().values() if s.state is not SessionState.TERMINATED]
        out[f"{node}_live_sessions"] = len(live)
        out[f"{node}_sessions"] = len(km.sessions())
        out[f"{node}_streams"] = len(km.streams._streams) if km.streams else 0
        out[f"{node}_buckets"] = len(km._buckets)
        out[f"{node}_ready_keys"] = km.pool.counts().get("ready", 0)
    return out


def run_idle(tmp_path, sessions_wanted: int) -> dict:
    side = math.ceil(math.sqrt(sessions_wanted))
    saes = {f"sae-a{i}": "A" for i in range(side)} | {f"sae-b{j}": "B" for j in range(side)}
    pairs = [(f"sae-a{i}", f"sae-b{j}") for i in range(side) for j in range(side)]
    pairs = pairs[:sessions_wanted]
    config = KmConfig(resolve_interval_s=0.25, terminated_retention_s=1.0)
    with LocalKmNetwork(tmp_path, ["A", "B"], [("A", "B")], saes, config=config) as net:
        net.feed("A", "B", blocks=4)
        # as many connections per SAE as open_pair's clients (no handshake per request)
        clients = {sae: km_load.sae_session(net.ca, *net.sae_cert(sae), pool=OPENERS)
                   for sae in saes}

        def warm() -> None:   # (re)open each SAE's connection: the KM closes idle ones (10 s)
            for sae, s in clients.items():
                s.get(f"{net.kms[saes[sae]].base_url}/api/v1/openapi/etsi004.json", timeout=30)

        warm()
        baseline = _resources(net)
        opened = 0
        statuses: dict[str, int] = {}
        counting = threading.Lock()

        def open_pair(session: dict) -> None:
            nonlocal opened
            a, b = session["master"], session["slave"]
            r = clients[a].post(f"{net.kms['A'].base_url}/api/v1/etsi004/open_connect",
                                json={"source": a, "destination": b, "QoS": {"timeout": 5000},
                                      "Key_stream_ID": None}, timeout=60).json()
            r2 = clients[b].post(f"{net.kms['B'].base_url}/api/v1/etsi004/open_connect",
                                 json={"source": b, "destination": a, "QoS": {"timeout": 5000},
                                       "Key_stream_ID": r.get("Key_stream_ID")},
                                 timeout=60).json()
            key = f"{r['status']}/{r2['status']}"
            with counting:
                statuses[key] = statuses.get(key, 0) + 1
                if r["status"] == 1 and r2["status"] == 0:
                    opened += 1

        # every session configured at once, without an idle timeout yet; every stream opened
        # concurrently by OPENERS clients (1,000 OPEN_CONNECTs take longer than 5 s on a
        # shared 2-core machine)
        configured = [{"app_id": str(uuid.uuid4()), "master": a, "slave": b} for a, b in pairs]
        for node, km in net.kms.items():
            km.apply_running_config(km_load.adjacent_session_config(node, configured))
        warm()
        started = time.time()
        with ThreadPoolExecutor(max_workers=OPENERS) as pool:
            list(pool.map(open_pair, configured))
        open_seconds = time.time() - started
        at_open = _resources(net)
        # all open at once; the controller sets the 5 s idle timeout on every session in one
        # edit: from this moment all of them are idle together
        for s in configured:
            s["idle_timeout"] = IDLE_TIMEOUT_S
        idle_from = time.time()
        for node, km in net.kms.items():
            km.apply_running_config(km_load.adjacent_session_config(node, configured))
        configure_seconds = time.time() - idle_from
        ids = {s["app_id"] for s in configured}
        deadline = time.time() + IDLE_TIMEOUT_S + 15
        while time.time() < deadline:
            if all(km.sessions()[i].state is SessionState.TERMINATED
                   for km in net.kms.values() for i in ids if i in km.sessions()):
                break
            time.sleep(0.1)
        idle_for = []
        not_expired = 0
        for km in net.kms.values():
            for sid in ids:
                session = km.sessions()[sid]
                expiry = [t for t in session.history if t.event is SessionEvent.EXPIRED]
                if not expiry:
                    not_expired += 1
                    continue
                # the last activity before expiry: configuration or a key request
                active = [t.at for t in session.history
                          if t.event in (SessionEvent.CONFIGURED, SessionEvent.KEY_REQUEST)]
                idle_for.append(expiry[0].at - max(active))
        after_expiry = _resources(net)
        # the controller removes the expired sessions' configuration
        for node, km in net.kms.items():
            km.apply_running_config(km_load.adjacent_session_config(node, []))
        for s in clients.values():
            s.close()
        time.sleep(1.5)          # the retention of terminated sessions (1 s), then forgotten
        # keep-alive connections between the KMs (and from the clients, closed above) are
        # closed by the servers once idle for their read deadline: wait for that, no longer
        settle_by = time.monotonic() + DEFAULT_READ_DEADLINE_S + 2.0
        while _fds() > baseline["fds"] + FDS_SLACK and time.monotonic() < settle_by:
            time.sleep(0.25)
        final = _resources(net)
    return {
        "sessions": len(configured), "streams_opened": opened, "open_statuses": statuses,
        "open_seconds": round(open_seconds, 2),
        "open_connects_per_s": round(2 * len(configured) / open_seconds, 1),
        "streams_open_at_once": min(at_open["A_streams"], at_open["B_streams"]),
        "timeout_configured_in_s": round(configure_seconds, 3),
        "idle_timeout_s": IDLE_TIMEOUT_S,
        "not_expired": not_expired,
        "closed_after_idle_s_min": round(min(idle_for), 3) if idle_for else None,
        "closed_after_idle_s_max": round(max(idle_for), 3) if idle_for else None,
        "baseline": baseline, "at_open": at_open, "after_expiry": after_expiry,
        "after_config_removed": final,
        "meets": bool(idle_for) and max(idle_for) <= IDLE_TIMEOUT_S + 1 and not_expired == 0,
    }


def _check(result: dict) -> None:
    n = result["sessions"]
    assert result["streams_opened"] == n, result
    assert result["streams_open_at_once"] == n, result
    assert result["not_expired"] == 0, result
    assert result["closed_after_idle_s_min"] >= IDLE_TIMEOUT_S, result   # not early
    after, base = result["after_expiry"], result["baseline"]
    for node in ("A", "B"):
        assert after[f"{node}_live_sessions"] == 0, result
        assert after[f"{node}_streams"] == 0, result
        assert after[f"{node}_buckets"] == 0, result
        assert after[f"{node}_ready_keys"] == base[f"{node}_ready_keys"], result
    final = result["after_config_removed"]
    for node in ("A", "B"):
        assert final[f"{node}_sessions"] == base[f"{node}_sessions"], result
    assert final["threads"] <= base["threads"] + 2, result
    assert final["fds"] <= base["fds"] + FDS_SLACK, result


@pytest.mark.timeout(300)
def test_idle_sessions_short(tmp_path):
    result = run_idle(tmp_path, 50)
    reliability_report.record("idle_sessions", "short", result)
    _check(result)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_idle_sessions_long(tmp_path):
    """500 sessions (``QKDN_RELIABILITY_IDLE_SESSIONS`` lowers it to validate the run on a
    busy machine: recorded as ``reduced-N``, not ``long``)."""
    sessions = int(os.environ.get("QKDN_RELIABILITY_IDLE_SESSIONS", LONG_SESSIONS))
    result = run_idle(tmp_path, sessions)
    reliability_report.record("idle_sessions",
                              "long" if sessions >= LONG_SESSIONS else f"reduced-{sessions}",
                              result)
    _check(result)
    assert result["closed_after_idle_s_max"] <= IDLE_TIMEOUT_S + 1, result
