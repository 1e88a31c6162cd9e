"""The dashboard in headless Chromium (Debian's chromium, driven over the DevTools pipe).

1. Against the orchestrator on a NETCONF north-bound server preloaded with the paper topology
   (tests/integration/orchestrator_nbi_double.py) whose link states follow the twin's fault
   files: the page draws every node and link of topologies/paper.yaml, a session's path is
   highlighted on click, and the "Cut link" button (a real mouse click) turns the link red
   within a few seconds. A screenshot is saved in the test's tmp dir.
2. Against a full network brought up with ``qkdn up`` (slow): the same through the real
   controller's north-bound interface, once the controller offers one (skipped otherwise).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.daemon import Orchestrator, OrchestratorSettings
from orchestrator.nbi_client import NbiEndpoint

from . import chromium_cdp
from .orchestrator_nbi_double import running_nbi_double

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "topologies" / "paper.yaml"
SCREENSHOT = REPO / "docs" / "img" / "dashboard.png"
SESSION = "55555551-5555-4555-8555-555555555551"

needs_chromium = pytest.mark.skipif(chromium_cdp.find_chromium() is None,
                                    reason="Chromium is not installed (apt install chromium)")


def paper_counts() -> tuple[int, int]:
    raw = yaml.safe_load(PAPER.read_text())
    return len(raw["nodes"]), len(raw["links"])


@needs_chromium
def test_dashboard_shows_the_network_and_a_link_cut(tmp_path: Path) -> None:
    state_dir = tmp_path / "net"
    state_dir.mkdir()
    shutil.copyfile(PAPER, state_dir / "topology.yaml")
    nodes, links = paper_counts()
    with running_nbi_double(state_dir / "topology.yaml", state_dir) as (double, nbi):
        double.add_session(SESSION, "2", "3", via=["0"])
        settings = OrchestratorSettings(state_dir=state_dir, nbi=NbiEndpoint.from_json(nbi),
                                        token_file=state_dir / "orchestrator" / "token")
        with Orchestrator(settings) as orchestrator, \
                chromium_cdp.Chromium(tmp_path / "profile") as browser:
            browser.open(f"{orchestrator.base_url}/dashboard/#token={orchestrator.token}")
            browser.wait_for(f"document.querySelector('#summary')?.dataset.links == '{links}'",
                             timeout=20)
            assert browser.evaluate("document.querySelectorAll('g.node').length") == nodes
            assert browser.evaluate("document.querySelectorAll('line.link').length") == links
            assert browser.evaluate(
                "document.querySelectorAll('line.link[data-status=down]').length") == 0
            # the token left the address bar (kept in sessionStorage only)
            assert "token" not in browser.evaluate("location.href")

            # a session's path is highlighted: 2 -> 0 -> 3 is two segments
            browser.wait_for("!!document.querySelector('#sessions li')", timeout=5)
            browser.click("#sessions li")
            browser.wait_for("document.querySelectorAll('line.path').length == 2", timeout=5)

            # select link 0-2 and press "Cut link"
            target = next(link for link in double.topology.links if {link.a, link.b} == {"0", "2"})
            selector = f'line.link[data-qkdl-id="{target.qkdl_id}"]'
            for _ in range(5):  # the graph is redrawn every second; retry a click that raced
                browser.click(selector)
                if browser.evaluate("!document.querySelector("
                                    "'button[data-action=link-down]').disabled"):
                    break
                time.sleep(0.2)
            started = time.monotonic()
            browser.click("button[data-action=link-down]")
            browser.wait_for(f"document.querySelector('{selector}')?.dataset.status == 'down'",
                             timeout=8)
            reflected_s = time.monotonic() - started
            assert browser.evaluate(
                "document.querySelectorAll('line.link[data-status=down]').length") == 1
            browser.wait_for("[...document.querySelectorAll('#timeline li')]"
                             ".some(li => li.dataset.type == 'fault_injected')", timeout=5)
            shot = browser.screenshot(tmp_path / "dashboard.png")
            assert shot.stat().st_size > 10_000
            if os.environ.get("QKDN_UPDATE_SCREENSHOT"):
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)
    print(f"link cut reflected on the dashboard after {reflected_s:.2f} s")
    assert reflected_s < 5


@pytest.mark.slow
@pytest.mark.timeout(400)  # bring-up alone may take minutes on a loaded machine
def test_orchestrator_of_a_running_network(tmp_path: Path) -> None:
    """``qkdn up`` starts the orchestrator after the controller and records it in
    endpoints.json; faults go to the real twin; with the controller's north-bound interface
    the dashboard shows the network and a cut link."""
    import requests

    from qkdn.bringup import bring_down, bring_up
    from qkdn.state_files import StateDir

    state = StateDir(tmp_path / "net")
    endpoints = bring_up(PAPER, state, timeout=120, controller=True)
    try:
        entry = endpoints["orchestrator"]
        token = Path(entry["token_file"]).read_text().strip()
        assert Path(entry["token_file"]).stat().st_mode & 0o777 == 0o600
        http = requests.Session()
        http.trust_env = False
        http.headers["Authorization"] = f"Bearer {token}"
        assert http.get(entry["url"] + "/openapi.json", timeout=10).status_code == 200
        faults = http.get(entry["url"] + "/api/v1/faults", timeout=10).json()["links"]
        assert len(faults) == paper_counts()[1] and all(f["state"]["nominal"] for f in faults)
        if not (endpoints.get("controller") or {}).get("nbi"):
            reply = http.get(entry["url"] + "/api/v1/qkd_network", timeout=10)
            assert reply.status_code == 502
            pytest.skip("the controller offers no north-bound NETCONF interface in this build "
                        "(endpoints.json has no controller.nbi)")
        if chromium_cdp.find_chromium() is None:
            pytest.skip("Chromium is not installed (apt install chromium)")
        nodes, links = paper_counts()
        with chromium_cdp.Chromium(tmp_path / "profile") as browser:
            browser.open(f"{entry['url']}/dashboard/#token={token}")
            browser.wait_for(f"document.querySelector('#summary')?.dataset.links == '{links}'",
                             timeout=30)
            assert browser.evaluate("document.querySelectorAll('g.node').length") == nodes
            cut = http.post(entry["url"] + "/api/v1/faults", timeout=10,
                            json={"action": "link-down", "link": {"nodes": ["0", "2"]}})
            assert cut.status_code == 202
            qkdl_id = cut.json()["link"]["qkdl_id"]
            browser.wait_for(f"document.querySelector('line.link[data-qkdl-id=\"{qkdl_id}\"]')"
                             "?.dataset.status == 'down'", timeout=15)
            browser.screenshot(tmp_path / "dashboard-network.png")
    finally:
        bring_down(state)
