"""`qkdn demo` end to end: the paper's scenario on real processes, checked from its report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_reproduces_the_papers_scenario(tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "qkdn.cli", "demo", "--report", str(report),
                           "--state-dir", str(tmp_path / "net")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads(report.read_text())
    flows = {(p["a"], p["b"], p["api"]): p for p in data["pairs"]}
    assert set(flows) == {(a, b, api) for a, b in (("0", "1"), ("2", "3"), ("4", "5"))
                          for api in ("014", "004")}
    for (a, b, _), flow in flows.items():
        assert flow["keys_match"] and len(flow["key_ids"]) == 4
        expected = {"2": ["2", "0", "3"]}.get(a, [a, b])
        assert flow["path"] == expected
    assert data["time_to_first_key_s"] is not None
    text = report.read_text()
    assert '"key"' not in text and "key_buffer" not in text  # ids only, no key material
    # everything was torn down
    assert "network stopped" in done.stdout
