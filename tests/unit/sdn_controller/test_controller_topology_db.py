import json
from pathlib import Path

import libyang
import pytest

from qkdn.node_model import initial_node_config
from qkdn.topology import load_topology
from sdn_controller.errors import TopologyDataError, UnknownEntryError
from sdn_controller.link_metrics import LinkStatus
from sdn_controller.routing import build_graph, compute_path
from sdn_controller.topology_db import TopologyDb

REPO = Path(__file__).resolve().parents[3]
ETSI_VALIDATION = REPO.parent / "shared" / "reference" / "etsi-yang" / "validation"
TOPO = load_topology(REPO / "topologies" / "paper.yaml")
T = "etsi-qkd-node-types:"


class Clock:
    now = 50.0

    def __call__(self):
        return self.now


def node_state(name, *, skr=12_000, qber="0.021", status="ACTIVE"):
    """A node's get reply as RFC 7951 JSON: topology config + operational state."""
    cfg = initial_node_config(TOPO, name)
    body = cfg["etsi-qkd-sdn-node:qkd_node"]
    body["qkdn_status"] = T + "OPERATING"
    for link in body.get("qkd_links", {}).get("qkd_link", []):
        link["qkdl_status"] = T + status
        link["qkdl_performance"] = {"skr": skr, "eskr": skr - 1000, "expected_consumption": 10,
                                    "phys_perf": [{"perf_type": T + "QBER", "value": qber}]}
    return cfg


def as_xml(cfg):
    """The same data as an agent's NETCONF <data> reply (printed by libyang from the
    standard's own modules, so prefixes and namespaces are the real thing)."""
    ctx = libyang.Context(str(ETSI_VALIDATION))
    ctx.load_module("etsi-qkd-node-types")
    ctx.load_module("etsi-qkd-sdn-node")
    tree = ctx.parse_data_mem(json.dumps(cfg), "json", strict=True, no_state=False,
                              validate_present=True)
    body = tree.print_mem("xml", with_siblings=True)
    tree.free()
    ctx.destroy()
    return (f'<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1">'
            f"<data>{body}</data></rpc-reply>")


@pytest.fixture
def db():
    d = TopologyDb.open(clock=Clock())
    yield d
    d.close()


def link_id(a, b):
    return next(l.qkdl_id for l in TOPO.links if set(l.ends()) == {a, b})


def nid(name):
    return TOPO.node(name).qkdn_id


def test_ingest_xml_get_replies_builds_the_paper_graph(db):
    for node in TOPO.nodes:
        db.ingest_node(as_xml(node_state(node.name)))
        db.name_node(node.qkdn_id, node.name)
    assert len(db.links()) == 6 and len(db.nodes()) == 6
    assert {n.name for n in db.nodes()} == {str(i) for i in range(6)}
    assert db.nodes()[0].status == "OPERATING"
    assert len(db.interfaces(nid("0"))) == 5
    l02 = db.link(link_id("0", "2"))
    assert (l02.node_a, l02.node_b) == (nid("0"), nid("2"))  # a = TRANSMITTER end
    assert l02.status is LinkStatus.ACTIVE and l02.skr == 12_000 and l02.eskr == 11_000
    assert l02.qber == pytest.approx(0.021) and l02.usable
    path = compute_path(build_graph(db.links()), nid("2"), nid("3"))
    assert path.nodes == (nid("2"), nid("0"), nid("3"))


def test_ingest_json_and_persistence(tmp_path):
    path = tmp_path / "topology.sqlite"
    db = TopologyDb.open(path, clock=Clock())
    updates = db.ingest_node(node_state("4", skr=5000))
    assert {u.current.qkdl_id for u in updates} == {link_id("0", "4"), link_id("4", "5")}
    assert all(u.previous is None and u.event == "get" for u in updates)
    db.set_flag(link_id("4", "5"), "QBER 0.2")
    db.close()
    again = TopologyDb.open(path, clock=Clock())
    l45 = again.link(link_id("4", "5"))
    assert l45.skr == 5000 and l45.flag_reason == "QBER 0.2" and not l45.usable
    again.close()


def test_both_ends_report_one_link(db):
    db.ingest_node(node_state("0", skr=1000))
    db.ingest_node(node_state("1", skr=2000))
    assert len([l for l in db.links() if {l.node_a, l.node_b} == {nid("0"), nid("1")}]) == 1
    assert db.link(link_id("0", "1")).skr == 2000


def notif_xml(inner):
    return ('<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
            '<eventTime>2026-11-27T03:00:00Z</eventTime>' + inner + '</notification>')


def test_notifications_xml(db):
    db.ingest_node(node_state("0"))
    lid = link_id("0", "3")
    (u,) = db.apply_notification(notif_xml(
        '<sdqkdn_link_perf_update xmlns="urn:etsi:qkd:yang:etsi-qkd-node"><qkd_link>'
        f'<qkdl_id>{lid}</qkdl_id><performance><skr>777</skr><eskr>700</eskr>'
        '<phys_perf><perf_type xmlns:t="urn:etsi:qkd:yang:etsi-qkd-node-types">t:QBER'
        '</perf_type><value>0.13</value></phys_perf></performance></qkd_link>'
        '</sdqkdn_link_perf_update>'), node_id=nid("0"))
    assert u.event == "sdqkdn_link_perf_update" and u.previous.skr == 12_000
    assert (u.current.skr, u.current.eskr, u.current.qber) == (777, 700, 0.13)
    (u,) = db.apply_notification(notif_xml(
        '<sdqkdn_link_down xmlns="urn:etsi:qkd:yang:etsi-qkd-node"><qkd_link>'
        f'<qkdl_id>{lid}</qkdl_id><reason>fiber cut</reason></qkd_link></sdqkdn_link_down>'),
        node_id=nid("0"))
    assert u.current.down_reason == "fiber cut" and u.current.status is LinkStatus.OFF
    assert not u.current.usable
    # a later perf update does not bring a down link back; an ACTIVE status does
    (u,) = db.apply_notification({"etsi-qkd-sdn-node:sdqkdn_link_perf_update": {
        "qkd_link": {"qkdl_id": lid, "performance": {"skr": 900}}}}, node_id=nid("0"))
    assert not u.current.usable
    (u,) = db.apply_notification({"etsi-qkd-sdn-node:event": {"link": {
        "qkdl_id": lid, "qkdl_status": T + "ACTIVE", "message": "restored",
        "severity": T + "MINOR"}}}, node_id=nid("0"))
    assert u.current.usable and u.message == "restored" and u.severity == "MINOR"


def test_overloaded_alarm_and_interface_down(db):
    db.ingest_node(node_state("0"))
    lid = link_id("0", "1")
    (u,) = db.apply_notification({"etsi-qkd-sdn-node:sdqkdn_link_overloaded": {"qkd_link": {
        "qkdl_id": lid, "performance": {"expected_consumption": 50_000, "skr": 10_000}}}},
        node_id=nid("0"))
    assert u.current.overloaded and u.current.expected_consumption == 50_000
    (u,) = db.apply_notification({"etsi-qkd-sdn-node:alarm": {"link": {
        "qkdl_id": lid, "qkdl_status": T + "OFF", "message": "module failure",
        "severity": T + "MAJOR"}}}, node_id=nid("0"))
    assert u.current.down_reason == "alarm: module failure" and u.severity == "MAJOR"
    qkdi = TOPO.interface_id("0", next(l for l in TOPO.links if l.qkdl_id == link_id("0", "5")))
    (u,) = db.apply_notification({"etsi-qkd-sdn-node:sdqkdn_interface_down": {
        "qkd_interface": {"qkdi_id": qkdi, "reason": "detector failure"}}}, node_id=nid("0"))
    assert u.current.qkdl_id == link_id("0", "5") and u.current.down_reason == "detector failure"
    assert [i.status for i in db.interfaces(nid("0")) if i.qkdi_id == qkdi] == ["FAILED"]


def test_unknown_links_and_application_notifications_change_nothing(db):
    db.ingest_node(node_state("0"))
    before = db.links()
    assert db.apply_notification({"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {
        "qkdl_id": "00000000-0000-0000-0000-000000000000"}}}, node_id=nid("0")) == []
    assert db.apply_notification({"etsi-qkd-sdn-node:sdqkdn_application_disconnected": {
        "qkd_application": {"app_id": "00000000-0000-0000-0000-000000000001"}}},
        node_id=nid("0")) == []
    assert db.links() == before


def test_bad_data_is_a_clear_error(db):
    with pytest.raises(TopologyDataError):
        db.ingest_node("<data xmlns='urn:ietf:params:xml:ns:netconf:base:1.0'/>")
    with pytest.raises(TopologyDataError):
        db.ingest_node("<not xml")
    with pytest.raises(TopologyDataError):
        db.apply_notification({"foo": {}}, node_id="x")
    bad = node_state("0")
    bad["etsi-qkd-sdn-node:qkd_node"]["qkd_links"]["qkd_link"][0]["qkdl_performance"]["skr"] = "x"
    with pytest.raises(TopologyDataError):
        db.ingest_node(bad)
    with pytest.raises(UnknownEntryError):
        db.link("nope")


def test_virtual_links_are_not_topology(db):
    cfg = node_state("0")
    cfg["etsi-qkd-sdn-node:qkd_node"]["qkd_links"]["qkd_link"].append({
        "qkdl_id": "11111111-2222-3333-4444-555555555555", "qkdl_type": T + "VIRT",
        "virt_prev_hop": nid("2"), "virt_next_hop": [nid("3")]})
    db.ingest_node(cfg)
    assert len(db.links()) == 5
