"""The paper's scenario through the SDN controller (separate processes): ETSI 014 requests
open sessions that the controller admits, routes and installs on every KM of the path."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from qkdn.namespaces import ETSI_NODE_NS
from qkdn.netconf_client import connect
from qkdn.sae_client import enc_keys_when_admitted, sae_client

pytestmark = pytest.mark.integration
NS = {"n": ETSI_NODE_NS}


def _sae(network, sae_id: str) -> requests.Session:
    return sae_client(network.endpoints, sae_id)


def _keys_through_controller(network, a: str, b: str, number: int = 2):
    """enc_keys (retried while the session is being admitted: 503), then dec_keys."""
    enc = enc_keys_when_admitted(_sae(network, f"sae-{a}"), network.endpoints["nodes"][a]["etsi014"],
                                 f"sae-{b}", number=number, method="GET")
    assert enc.status_code == 200, f"{a}->{b}: {enc.text}"
    keys = enc.json()["keys"]
    url_b = network.endpoints["nodes"][b]["etsi014"]
    dec = _sae(network, f"sae-{b}").post(
        f"{url_b}/sae-{a}/dec_keys", json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]},
        timeout=30)
    assert dec.status_code == 200, dec.text
    return keys, dec.json()["keys"]


def _sessions(network) -> str:
    done = subprocess.run([sys.executable, "-m", "qkdn.cli", "sessions", "--state-dir",
                           str(network.state.root)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _virtual_links(network, node: str):
    nc = network.netconf(node)
    with connect(nc["host"], nc["port"], nc["username"], nc["password"]) as session:
        data = session.get_config(source="running").data_ele
    return [link for link in data.iterfind(".//n:qkd_link", NS)
            if link.findtext("n:qkdl_type", namespaces=NS).endswith("VIRT")]


def test_paper_pairs_get_matching_keys_on_the_papers_paths(controlled_paper_network):
    net = controlled_paper_network
    for a, b in [("0", "1"), ("4", "5"), ("2", "3")]:
        enc, dec = _keys_through_controller(net, a, b)
        assert enc == dec
    table = _sessions(net)
    paths = {line.split()[2].split("@")[0]: line.split()[-1]
             for line in table.splitlines()[1:] if " active " in line}
    assert paths == {"sae-0": "0-1", "sae-4": "4-5", "sae-2": "2-0-3"}

    # the trusted node holds the forwarding rule with its neighbours only; nodes off the
    # path hold nothing of the session
    ids = {name: node["qkdn_id"] for name, node in net.endpoints["nodes"].items()}
    (virt,) = _virtual_links(net, "0")
    assert virt.findtext("n:virt_prev_hop", namespaces=NS) == ids["2"]
    assert virt.findtext("n:virt_next_hop", namespaces=NS) == ids["3"]
    assert _virtual_links(net, "1") == []
