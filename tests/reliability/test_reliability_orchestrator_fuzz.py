"""Item 2 for the orchestrator: REST fuzzing of its API from its own ``/openapi.json``
(schemathesis, positive and negative cases, bearer token), raw garbage on its TLS socket and
slow clients, with the harness of ``rest_fuzz.py`` used for the KM.

Target: a real network brought up with ``qkdn up`` (three nodes in a line A–B–C, separate
processes: node agents and KMs, the controller with its north-bound NETCONF server, the
orchestrator over HTTPS with ``QKDN_ORCHESTRATOR_TLS=1``), so every request the fuzzer makes
goes through the orchestrator to the real controller. One ETSI 014 session A→C is running
when the fuzz starts. The endless event stream (``GET /api/v1/events/stream``) is left out of
the schema fuzz (each case would wait for its heartbeat); the slow-client and garbage runs
cover its socket. Fault actions are fuzzed too (they act on the real twin).

Short run in ``make test`` (6 cases per operation and mode); long run in ``make reliability``
(400 per operation and mode). Figures: bench/reliability.json, items ``orchestrator_fuzz``,
``orchestrator_garbage``, ``orchestrator_slow_clients``.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from orchestrator.server import READ_DEADLINE_S
from qkdn.bringup import bring_down, bring_up
from qkdn.sae_client import enc_keys_when_admitted, sae_client
from qkdn.state_files import StateDir

from . import reliability_report, rest_fuzz

pytestmark = pytest.mark.integration

#: three nodes in a line, an SAE on each (shared with the secrets-at-rest run)
TOPOLOGY = Path(__file__).with_name("line3.yaml").read_text()

#: the endless text/event-stream: every case would wait for a heartbeat
EXCLUDED = frozenset({"GET /api/v1/events/stream"})
#: cases per operation and generation mode in the long run (the issue: at least 400)
LONG_CASES = 400


class Network:
    """The running network and what a client of the orchestrator needs."""

    def __init__(self, state: StateDir, endpoints: dict) -> None:
        self.state = state
        self.endpoints = endpoints
        entry = endpoints["orchestrator"]
        self.base_url: str = entry["url"]
        self.ca: str = entry["ca_cert"]
        self.token = Path(entry["token_file"]).read_text().strip()

    def session(self) -> requests.Session:
        session = rest_fuzz.tls_session(self.ca)
        session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def openapi(self) -> dict:
        reply = self.session().get(self.base_url + "/openapi.json", timeout=30)
        reply.raise_for_status()
        return reply.json()

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def _start_session(endpoints: dict) -> None:
    """One ETSI 014 exchange sae-a → sae-c: the controller sets up a session A–B–C."""
    reply = enc_keys_when_admitted(sae_client(endpoints, "sae-a"),
                                   endpoints["nodes"]["A"]["etsi014"], "sae-c", timeout_s=60)
    assert reply.status_code == 200, f"no key for sae-a → sae-c: {reply.text}"


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("orchfuzz")
    topology = root / "line.yaml"
    topology.write_text(TOPOLOGY)
    state = StateDir(root / "net")
    previous = os.environ.get("QKDN_ORCHESTRATOR_TLS")
    os.environ["QKDN_ORCHESTRATOR_TLS"] = "1"   # read by the supervisor's children
    try:
        endpoints = bring_up(topology, state, timeout=240)
    finally:
        if previous is None:
            os.environ.pop("QKDN_ORCHESTRATOR_TLS", None)
        else:
            os.environ["QKDN_ORCHESTRATOR_TLS"] = previous
    try:
        assert endpoints["orchestrator"]["url"].startswith("https://")
        _start_session(endpoints)
        yield Network(state, endpoints)
    finally:
        bring_down(state)


def _fuzz(net: Network, examples: int, seed: int) -> dict:
    target = rest_fuzz.FuzzTarget("orchestrator", net.base_url, net.openapi(), net.session,
                                  documented_5xx=frozenset({503}), exclude=EXCLUDED)
    result = rest_fuzz.run_schema_fuzz(target, examples=examples, seed=seed)
    figures = {k: result[k] for k in ("cases", "server_errors", "schema_violations",
                                      "transport_errors", "statuses", "seconds",
                                      "unsatisfiable")}
    figures["operations"] = len(result["cases_per_operation"])
    figures["min_cases_per_operation"] = min(result["cases_per_operation"].values())
    figures["failures"] = result["failures"][:20]
    # the orchestrator still serves, and still talks to the controller
    status = net.session().get(net.base_url + "/api/v1/qkd_network/nodes", timeout=30)
    figures["served_after"] = status.status_code
    return figures


def _check(figures: dict) -> None:
    assert figures["transport_errors"] == 0, figures["failures"]
    assert figures["server_errors"] == 0, figures["failures"]
    assert figures["schema_violations"] == 0, figures["failures"]
    assert figures["operations"] >= 30, figures
    assert figures["served_after"] == 200


def test_orchestrator_schema_fuzz_short(network):
    figures = _fuzz(network, examples=6, seed=20261127)
    reliability_report.record("orchestrator_fuzz", "short", figures)
    _check(figures)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_orchestrator_schema_fuzz_long(network):
    """400 cases per operation and mode (QKDN_RELIABILITY_FUZZ_CASES overrides it for an
    exploratory run, recorded as ``explore-N``, not as the long run)."""
    examples = int(os.environ.get("QKDN_RELIABILITY_FUZZ_CASES", LONG_CASES))
    figures = _fuzz(network, examples=examples, seed=4004)
    run = "long" if examples >= LONG_CASES else f"explore-{examples}"
    reliability_report.record("orchestrator_fuzz", run, {**figures, "cases_per_mode": examples})
    _check(figures)
    # every operation ran its cases in each mode
    assert figures["min_cases_per_operation"] >= 2 * examples, figures


def test_orchestrator_fuzz_without_credentials(network):
    """The same operations with no token, or a wrong one: every answer is a documented 401
    (authentication comes before validation, routing and the controller)."""
    def anonymous() -> requests.Session:
        return rest_fuzz.tls_session(network.ca)

    def wrong_token() -> requests.Session:
        session = rest_fuzz.tls_session(network.ca)
        session.headers["Authorization"] = "Bearer " + "x" * len(network.token)
        return session
    document = network.openapi()
    figures = {}
    for name, factory in (("no_token", anonymous), ("wrong_token", wrong_token)):
        target = rest_fuzz.FuzzTarget(f"orchestrator-{name}", network.base_url, document,
                                      factory, exclude=EXCLUDED)
        result = rest_fuzz.run_schema_fuzz(target, examples=3, seed=11)
        figures[name] = {k: result[k] for k in ("cases", "server_errors", "schema_violations",
                                                "transport_errors", "statuses")}
        assert result["statuses"] == {401: result["cases"]}, result["statuses"]
        assert result["schema_violations"] == 0, result["failures"][:5]
    reliability_report.record("orchestrator_fuzz", "unauthenticated", figures)


def _probe(net: Network) -> bool:
    return net.session().get(net.base_url + "/api/v1/status", timeout=30).status_code == 200


def _raw(net: Network, rounds: int, seed: int) -> dict:
    paths = ["/api/v1/users", "/api/v1/sessions", "/api/v1/faults", "/api/v1/events/stream",
             "/openapi.json"]
    result = rest_fuzz.run_raw_garbage("127.0.0.1", urlsplit(net.base_url).port,
                                       net.tls_context(), paths, rounds=rounds, seed=seed,
                                       probe=lambda: _probe(net),
                                       headers={"Authorization": f"Bearer {net.token}"})
    assert result["server_errors"] == [], result
    assert result["probe_failures"] == 0, result
    assert result["plain_on_tls_refused"] == 2
    assert _probe(net)
    return result


def test_orchestrator_raw_garbage_short(network):
    reliability_report.record("orchestrator_garbage", "short", _raw(network, rounds=1, seed=7))


@pytest.mark.slow
def test_orchestrator_raw_garbage_long(network):
    reliability_report.record("orchestrator_garbage", "long", _raw(network, rounds=10, seed=8))


def _slow_clients(net: Network, per_kind: int) -> dict:
    session = net.session()

    def probe() -> float:
        started = time.monotonic()
        reply = session.get(net.base_url + "/api/v1/status", timeout=30,
                            headers={"Connection": "close"})
        assert reply.status_code == 200
        return time.monotonic() - started
    result = rest_fuzz.run_slow_clients("127.0.0.1", urlsplit(net.base_url).port,
                                        net.tls_context(), "/api/v1/users", per_kind=per_kind,
                                        byte_interval=0.5, give_up=READ_DEADLINE_S + 25,
                                        probe=probe)
    assert result["errors"] == [], result
    assert result["closed"] == result["clients"], result   # every one cut by the server
    assert probe() < 30
    return {**result, "read_deadline_s": READ_DEADLINE_S, "worker_threads": 24,
            "meets": result["max_closed_after_s"] <= READ_DEADLINE_S + 2
            and result["probe_latency_max_s"] < 1.0}


def test_orchestrator_slow_clients_short(network):
    """Silent and byte-by-byte clients on the orchestrator's HTTPS port are cut at the read
    deadline; a normal operator request is served meanwhile."""
    result = _slow_clients(network, per_kind=3)
    reliability_report.record("orchestrator_slow_clients", "short", result)


@pytest.mark.slow
def test_orchestrator_slow_clients_long(network):
    """40 hostile connections (more partial requests than 24 worker threads would allow
    without the deadline)."""
    result = _slow_clients(network, per_kind=8)
    reliability_report.record("orchestrator_slow_clients", "long", result)
    assert result["max_closed_after_s"] <= READ_DEADLINE_S + 3, result
