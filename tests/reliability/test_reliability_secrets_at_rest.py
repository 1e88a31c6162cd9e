"""Item 9: no secrets at rest or in logs. Keys are delivered over ETSI 014 (adjacent and
relayed) and ETSI 004 (relayed); every file under the state directory (key stores, ``-wal`` /
``-shm`` / journals, logs, JSON, controller databases) is then searched for each delivered
key as raw bytes, standard and URL-safe base64 and lower/upper-case hex — once while the
network runs and once after it stopped.

* short run (``make test``): three KMs A–B–C in-process (``LocalKmNetwork``, B relays by the
  session's forwarding rules), every logger at DEBUG into a file in the state directory;
* slow run: a three-node line brought up with ``qkdn up`` (node processes, controller and its
  SQLite databases, supervisor, their logs), then ``qkdn down``.
Figures: bench/reliability.json, item secrets_at_rest.
"""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path

import pytest
import requests

from kms.local_network import LocalKmNetwork
from qkdn.bringup import bring_down, bring_up
from qkdn.sae_client import enc_keys_when_admitted, sae_client
from qkdn.state_files import StateDir

from ..integration import km_relay_line
from . import reliability_report

pytestmark = pytest.mark.integration

#: three nodes in a line, an SAE on each (shared with the orchestrator fuzz run)
TOPOLOGY = Path(__file__).with_name("line3.yaml").read_text()


def forms(key: bytes) -> list[bytes]:
    """Every spelling of a key worth searching for (≥ 16 bytes each, so no chance hits)."""
    return [key, base64.b64encode(key), base64.urlsafe_b64encode(key),
            base64.b64encode(key).rstrip(b"="), key.hex().encode(), key.hex().upper().encode()]


def scan(state_dir: Path, keys: list[bytes]) -> dict:
    """Files under ``state_dir`` holding any form of any key: {path: number of keys found}."""
    hits: dict[str, int] = {}
    files = 0
    size = 0
    by_element: dict[str, int] = {}
    for path in sorted(p for p in state_dir.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        files += 1
        size += len(data)
        element = _element_of(path.relative_to(state_dir))
        by_element[element] = by_element.get(element, 0) + 1
        found = sum(1 for key in keys if any(f in data for f in forms(key)))
        if found:
            hits[str(path.relative_to(state_dir))] = found
    return {"files": files, "bytes": size, "hits": hits, "files_by_element": by_element}


def _element_of(relative: Path) -> str:
    """Which element a file belongs to: ``nodes/A``, ``controller``, ``orchestrator``,
    ``pki``... (the state directory's first level, the node's name under ``nodes``)."""
    parts = relative.parts
    if len(parts) > 2 and parts[0] == "nodes":
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else "(top)"




def deliver_014(endpoints: dict, a: str, b: str, rounds: int) -> list[bytes]:
    master, slave = sae_client(endpoints, f"sae-{a}"), sae_client(endpoints, f"sae-{b}")
    url_a = endpoints["nodes"][a.upper()]["etsi014"]
    url_b = endpoints["nodes"][b.upper()]["etsi014"]
    return _deliver_014(master, slave, url_a, url_b, a, b, rounds)


def _deliver_014(master, slave, url_a: str, url_b: str, a: str, b: str,
                 rounds: int) -> list[bytes]:
    keys: list[bytes] = []
    for _ in range(rounds):
        r = enc_keys_when_admitted(master, url_a, f"sae-{b}", number=2, retry_s=0.5)
        assert r.status_code == 200, r.text
        got = r.json()["keys"]
        d = slave.post(f"{url_b}/sae-{a}/dec_keys",
                       json={"key_IDs": [{"key_ID": k["key_ID"]} for k in got]}, timeout=30)
        assert d.status_code == 200 and d.json()["keys"] == got, d.text
        keys += [base64.b64decode(k["key"]) for k in got]
    return keys


def deliver_004(endpoints: dict, a: str, b: str, count: int) -> list[bytes]:
    s_a, s_b = sae_client(endpoints, f"sae-{a}"), sae_client(endpoints, f"sae-{b}")
    url_a = endpoints["nodes"][a.upper()]["etsi004"]
    url_b = endpoints["nodes"][b.upper()]["etsi004"]
    return _deliver_004(s_a, s_b, url_a, url_b, a, b, count)


def _deliver_004(s_a, s_b, url_a: str, url_b: str, a: str, b: str, count: int) -> list[bytes]:
    qos = {"key_chunk_size": 32, "timeout": 20000, "ttl": 600}
    r = s_a.post(f"{url_a}/open_connect", json={"source": f"sae-{a}", "destination": f"sae-{b}",
                                                "QoS": qos, "Key_stream_ID": None}, timeout=60)
    ksid = r.json()["Key_stream_ID"]
    assert r.json()["status"] in (0, 1), r.text
    r = s_b.post(f"{url_b}/open_connect", json={"source": f"sae-{b}", "destination": f"sae-{a}",
                                                "QoS": qos, "Key_stream_ID": ksid}, timeout=60)
    assert r.json()["status"] == 0, r.text
    keys = []
    for index in range(count):
        ka = s_a.post(f"{url_a}/get_key", json={"Key_stream_ID": ksid, "index": index},
                      timeout=60).json()
        kb = s_b.post(f"{url_b}/get_key", json={"Key_stream_ID": ksid, "index": index},
                      timeout=60).json()
        assert ka["status"] == 0 and kb["status"] == 0 and ka["key_buffer"] == kb["key_buffer"]
        keys.append(base64.b64decode(ka["key_buffer"]))
    for s, url in ((s_a, url_a), (s_b, url_b)):
        s.post(f"{url}/close", json={"Key_stream_ID": ksid}, timeout=30)
    return keys


def credentials_of(endpoints: dict) -> dict[str, bytes]:
    """The network's passwords and the operator token, by name."""
    out = {f"netconf-password-{name}": node["netconf"]["password"].encode()
           for name, node in endpoints["nodes"].items()}
    out["nbi-password"] = endpoints["controller"]["nbi"]["password"].encode()
    out["operator-token"] = Path(endpoints["orchestrator"]["token_file"]).read_bytes().strip()
    return out


def orchestrator_views(endpoints: dict) -> bytes:
    """What the north-bound API shows of the sessions that delivered the keys (service links
    with their key provenance, events): no key may be in it either."""
    entry = endpoints["orchestrator"]
    http = requests.Session()
    http.trust_env = False
    http.headers["Authorization"] = f"Bearer {Path(entry['token_file']).read_text().strip()}"
    http.verify = entry.get("ca_cert", True)
    out = b""
    for path in ("/api/v1/sessions", "/api/v1/events?limit=1000", "/api/v1/qkd_network"):
        reply = http.get(entry["url"] + path, timeout=30)
        assert reply.status_code == 200, reply.text
        out += reply.content
    return out


def _km_session(net: LocalKmNetwork, sae: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


@pytest.mark.timeout(300)
def test_no_delivered_key_at_rest_or_in_km_logs(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    handler = logging.FileHandler(state / "km-debug.log")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    saes = {"sae-a": "A", "sae-b": "B", "sae-c": "C"}
    try:
        with LocalKmNetwork(state, ["A", "B", "C"], km_relay_line.LINKS, saes) as net:
            for node, km in net.kms.items():
                km.apply_running_config(km_relay_line.running_config(node))
            net.feed("A", "B", blocks=8, size=8192)
            net.feed("B", "C", blocks=8, size=8192)
            url = {n: km.base_url for n, km in net.kms.items()}
            s = {sae: _km_session(net, sae) for sae in saes}
            keys = _deliver_014(s["sae-a"], s["sae-b"], f"{url['A']}/api/v1/keys",
                                f"{url['B']}/api/v1/keys", "a", "b", rounds=5)
            keys += _deliver_014(s["sae-a"], s["sae-c"], f"{url['A']}/api/v1/keys",
                                 f"{url['C']}/api/v1/keys", "a", "c", rounds=5)
            keys += _deliver_004(s["sae-c"], s["sae-a"], f"{url['C']}/api/v1/etsi004",
                                 f"{url['A']}/api/v1/etsi004", "c", "a", count=4)
            assert len(set(keys)) == len(keys) == 24
            handler.flush()
            canary = uuid.uuid4().bytes + uuid.uuid4().bytes   # the search itself must work
            (state / "canary.log").write_bytes(b"x" + base64.b64encode(canary) + b"\n")
            running = scan(state, keys + [canary])
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    stopped = scan(state, keys)
    log_lines = (state / "km-debug.log").read_text().count("\n")
    result = {"keys_delivered": len(keys), "debug_log_lines": log_lines,
              "while_running": running, "after_stop": stopped}
    reliability_report.record("secrets_at_rest", "short", result)
    assert log_lines > 50                       # the KMs did log, at DEBUG
    assert running["hits"] == {"canary.log": 1}, running["hits"]
    assert stopped["hits"] == {}, stopped["hits"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_no_delivered_key_at_rest_or_in_logs_qkdn_up(tmp_path):
    topology = tmp_path / "line.yaml"
    topology.write_text(TOPOLOGY)
    state = StateDir(tmp_path / "net")
    endpoints = bring_up(topology, state, timeout=240)
    try:
        keys = deliver_014(endpoints, "a", "b", rounds=5)       # adjacent
        keys += deliver_014(endpoints, "a", "c", rounds=5)      # relayed by B
        keys += deliver_004(endpoints, "c", "a", count=4)       # 004, relayed
        assert len(set(keys)) == len(keys) == 24
        north_bound = orchestrator_views(endpoints)
        canary = uuid.uuid4().bytes + uuid.uuid4().bytes       # the search itself must work
        (state.root / "canary.log").write_bytes(b"x" + base64.b64encode(canary) + b"\n")
        running = scan(state.root, keys + [canary])
        credentials = credentials_of(endpoints)
    finally:
        bring_down(state)
    stopped = scan(state.root, keys)
    logs = sorted(p for p in state.root.rglob("*.log") if p.name != "canary.log")
    credential_hits = {str(p.relative_to(state.root)): name for p in logs
                       for name, value in credentials.items() if value in p.read_bytes()}
    api_hits = sum(1 for key in keys if any(f in north_bound for f in forms(key)))
    result = {"keys_delivered": len(keys), "while_running": running, "after_down": stopped,
              "orchestrator_api_bytes": len(north_bound), "orchestrator_api_hits": api_hits,
              "logs_searched_for_credentials": len(logs),
              "credentials_searched": sorted(credentials),
              "credential_hits_in_logs": credential_hits}
    reliability_report.record("secrets_at_rest", "long", result)
    assert running["hits"] == {"canary.log": 1}, running["hits"]
    assert stopped["hits"] == {}, stopped["hits"]
    assert api_hits == 0 and b"svc_link" in north_bound
    # passwords and the operator token live in their 0600 files, never in a log
    assert credential_hits == {}, credential_hits
    assert len(logs) >= 5, logs   # supervisor, three nodes, controller, orchestrator
    assert running["files"] > 20 and any(".sqlite" in p for p in map(str, state.root.rglob("*")))
    # every process's files were searched: the three nodes (agent, KM stores, logs), the
    # controller (its databases and log), the orchestrator, the supervisor's log
    elements = running["files_by_element"]
    for element in ("controller", "orchestrator"):
        assert elements.get(element, 0) >= 1, elements
    assert sum(1 for e in elements if e.startswith("nodes/")) == 3, elements
    assert any(str(p).endswith("controller.log") for p in state.root.rglob("*")), elements
