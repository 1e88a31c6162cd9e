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
