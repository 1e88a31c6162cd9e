"""The controller's north-bound NETCONF server in a network started by ``qkdn up`` (separate
processes): its endpoint in endpoints.json, the six nodes, an ETSI 014 session appearing as a
service link, and closed through ``close_svc_link``."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from qkdn.namespaces import QKDN_INV_NS, QKDN_TOPO_NS
from qkdn.netconf_client import connect
from qkdn.sae_client import enc_keys_when_admitted, sae_client

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NS = {"t": QKDN_TOPO_NS, "i": QKDN_INV_NS}


def _enc_keys(network, a: str, b: str) -> None:
    enc = enc_keys_when_admitted(sae_client(network.endpoints, f"sae-{a}"),
                                 network.endpoints["nodes"][a]["etsi014"], f"sae-{b}",
                                 method="GET")
    assert enc.status_code == 200, enc.text


def _svc_links(m) -> list[etree._Element]:
    flt = f'<qkd_network xmlns="{QKDN_TOPO_NS}"><qkd_links><svc_links/></qkd_links></qkd_network>'
    return m.get(filter=("subtree", flt)).data_ele.findall(".//t:svc_link", NS)


def test_orchestrator_sees_the_network_and_closes_a_session(controlled_paper_network):
    net = controlled_paper_network
    nbi = net.endpoints["controller"]["nbi"]
    assert set(nbi) == {"host", "port", "username", "password"}
    ids = {name: node["qkdn_id"] for name, node in net.endpoints["nodes"].items()}
    with connect(nbi["host"], nbi["port"], nbi["username"], nbi["password"]) as m:
        flt = f'<qkd_network xmlns="{QKDN_TOPO_NS}"><sdqkd_nodes/></qkd_network>'
        deadline = time.monotonic() + 20
        while True:
            nodes = m.get(filter=("subtree", flt)).data_ele.findall(".//t:sdqkd_node", NS)
            statuses = {n.findtext("t:qkdn_name", namespaces=NS):
                        n.findtext("t:qkdn_status", namespaces=NS) for n in nodes}
            if all(str(s).endswith("OPERATING") for s in statuses.values()) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert set(statuses) == set("012345")
        assert all(s.endswith("OPERATING") for s in statuses.values()), statuses

        m.create_subscription()
        _enc_keys(net, "2", "3")
        (svc,) = [s for s in _svc_links(m)
                  if s.findtext("i:svc_link_details/i:local_app/i:sae_id",
                                namespaces=NS) == "sae-2"]
        sid = svc.findtext("t:qkdl_id", namespaces=NS)
        hops = [h.findtext("t:qkdn_id", namespaces=NS)
                for h in svc.findall("t:paths/t:path/t:hop", NS)]
        assert hops == [ids["2"], ids["0"], ids["3"]]

        m.dispatch(etree.fromstring(f'<close_svc_link xmlns="{QKDN_INV_NS}">'
                                    f"<qkdl_id>{sid}</qkdl_id></close_svc_link>"))
        deadline = time.monotonic() + 10
        removed = None
        while removed is None and time.monotonic() < deadline:
            note = m.take_notification(timeout=0.5)
            if note is not None and note.notification_ele.find(
                    ".//i:qkdn_resource_removed", NS) is not None:
                removed = note.notification_ele
        assert removed is not None
        assert removed.findtext(".//i:qkdl_id", namespaces=NS) == sid
        assert sid not in [s.findtext("t:qkdl_id", namespaces=NS) for s in _svc_links(m)]
