"""Admission control with hybrid / pqc-fallback SLAs (ADR 0009): policy of a session, admission
below capacity and without a path, reroute failure keeps the session, counters and key mode,
payload leaf validated by the YANG modules."""

import copy
import itertools

import libyang
import pytest
from lxml import etree

from qkd_agent.yang_context import load_context
from qkdn.namespaces import NETCONF_BASE_NS
from qkdn.sla import FallbackPolicy
from sdn_controller.admission_control import (
    AdmissionControl,
    ConfigRequest,
    Configured,
    Rerouted,
    Terminated,
    session_fallback,
)
from sdn_controller.config_payloads import session_config_payload, to_xml
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import GraphRouter
from sdn_controller.session_config import QoS
from sdn_controller.user_db import SlaProfile, UserDb


class Links:
    def __init__(self, links):
        self.links = {lk.qkdl_id: lk for lk in links}

    def __call__(self):
        return list(self.links.values())

    def set(self, qkdl_id, **changes):
        from dataclasses import replace
        self.links[qkdl_id] = replace(self.links[qkdl_id], **changes)


def link(a, b, skr=100_000):
    return LinkMetrics(f"{a}-{b}", a, b, LinkStatus.ACTIVE, skr=skr)


@pytest.fixture
def db():
    db = UserDb.open()
    db.add_sla(SlaProfile("plain", max_bps=50_000, min_bps=1_000, max_priority=5))
    db.add_sla(SlaProfile("hyb", max_bps=50_000, min_bps=1_000, max_priority=5,
                          fallback=FallbackPolicy.HYBRID))
    db.add_sla(SlaProfile("pqc", max_bps=50_000, min_bps=1_000, max_priority=5,
                          fallback=FallbackPolicy.PQC_FALLBACK))
    for name, sla, node in [("h4", "hyb", "n4"), ("h5", "hyb", "n5"), ("p1", "plain", "n1"),
                            ("q2", "pqc", "n2")]:
        db.add_user(name, sla)
        db.add_application(f"sae-{name}", name, node)
    yield db
    db.close()


def make(db, links):
    ids = (f"00000000-0000-4000-8000-00000000000{i}" for i in itertools.count())
    return AdmissionControl(db, GraphRouter(links), clock=lambda: 1000.0,
                            new_session_id=lambda: next(ids))


def open_014(ac, a, b, rate=20_000):
    """An ETSI 014 request of user ``a`` toward ``b`` (the peer opens nothing)."""
    sla = {"h": "hyb", "p": "plain", "q": "pqc"}[a[0]]
    return ac.request_config(ConfigRequest(f"n{a[1]}", f"sae-{a}", f"sae-{b}", a, sla,
                                           QoS(max_bps=rate), peer_opens=False))


def test_session_policy_is_the_more_restrictive_of_both_slas(db):
    hyb, plain, pqc = db.sla("hyb"), db.sla("plain"), db.sla("pqc")
    assert session_fallback(hyb, hyb) is FallbackPolicy.HYBRID
    assert session_fallback(hyb, plain) is FallbackPolicy.QKD_ONLY
    assert session_fallback(pqc, hyb) is FallbackPolicy.HYBRID
    assert session_fallback(pqc, pqc) is FallbackPolicy.PQC_FALLBACK


def test_hybrid_session_admitted_below_capacity_and_without_path(db):
    links = Links([link("n4", "n5", skr=5_000), link("n0", "n1")])
    ac = make(db, links)
    done = open_014(ac, "h4", "h5")
    assert isinstance(done, Configured) and done.rate_bps == 20_000
    assert ac.ledger.reserved_by_link() == {"n4-n5": 5_000}      # what QKD can carry
    assert {c.fallback_policy for c in done.configs} == {"hybrid"}
    links.set("n4-n5", status=LinkStatus.OFF)
    out = ac.reroute(done.session_id)                              # no route left
    assert isinstance(out, Rerouted) and out.kept_for_fallback
    assert ac.session(done.session_id).state.value == "active"
    # a qkd-only session in the same place gets only what QKD carries, or nothing
    plain = make(db, Links([link("n4", "n1", skr=5_000)]))
    assert open_014(plain, "p1", "h4").rate_bps == 5_000
    assert isinstance(open_014(make(db, Links([])), "p1", "h4"), Terminated)
    nopath = make(db, Links([]))
    kept = open_014(nopath, "h4", "h5")
    assert isinstance(kept, Configured) and kept.route is None
    assert {c.node_id for c in kept.configs} == {"n4", "n5"}


def test_counters_and_key_mode_follow_the_initiator_km(db):
    ac = make(db, Links([link("n4", "n5")]))
    done = open_014(ac, "h4", "h5")
    ac.record_delivery(done.session_id, "n4", {"qkd": (2, 512), "hybrid": (3, 768)})
    ac.record_delivery(done.session_id, "n5", {"qkd": (2, 512)})    # the other end: not counted
    assert ac.set_key_mode(done.session_id, "hybrid") == "qkd"
    assert ac.set_key_mode(done.session_id, "hybrid") is None
    view = ac.session(done.session_id)
    assert view.delivered == {"qkd": (2, 512), "hybrid": (3, 768)} and view.key_mode == "hybrid"


def _as_data(payload):
    body = copy.deepcopy(payload[0])
    for element in body.iter():
        element.attrib.pop(f"{{{NETCONF_BASE_NS}}}operation", None)
    return etree.tostring(body, encoding="unicode")


N7, N8 = "00000000-0000-4000-8000-0000000000a7", "00000000-0000-4000-8000-0000000000a8"


def test_payload_carries_the_policy_and_validates(db):
    db.add_user("h7", "hyb")
    db.add_application("sae-h7", "h7", N7)
    db.add_user("h8", "hyb")
    db.add_application("sae-h8", "h8", N8)
    ac = make(db, Links([LinkMetrics("00000000-0000-4000-8000-0000000000b0", N7, N8,
                                     LinkStatus.ACTIVE, skr=100_000)]))
    done = ac.request_config(ConfigRequest(N7, "sae-h7", "sae-h8", "h7", "hyb",
                                           QoS(max_bps=1000), peer_opens=False))
    payload = session_config_payload(done.configs[0])
    assert "<qkdn-km:fallback_policy>hybrid</qkdn-km:fallback_policy>" in to_xml(payload)
    ctx = load_context()
    ctx.parse_data_mem(_as_data(payload), "xml", no_state=True, strict=True,
                       validate_present=True).free()
    with pytest.raises(libyang.LibyangError):
        ctx.parse_data_mem(_as_data(payload).replace(">hybrid<", ">maybe<"), "xml",
                           no_state=True, strict=True, validate_present=True)
    plain = make(db, Links([link("n4", "n1")]))
    cfg = open_014(plain, "p1", "h4").configs[0]
    assert "fallback_policy" not in to_xml(session_config_payload(cfg))
