"""The north-bound builders (nbi_network, nbi_service_links, nbi_access, nbi_notifications):
pure JSON, validated with libyang against qkdn-sdn-topology/-inventory/-access. No sockets."""

from __future__ import annotations

import json

import libyang
import pytest

from qkd_agent.yang_context import load_context
from qkdn.sla import FallbackPolicy, SlaProfile
from qkdn.topology import parse_topology
from sdn_controller.admission_control import AdmissionControl, ConfigRequest, SessionState
from sdn_controller.errors import DatabaseError
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.monitoring import AlarmEvent, AlarmKind, Severity
from sdn_controller.nbi_access import (
    AccessData,
    ChangeKind,
    access_changes,
    access_config,
    access_data,
    access_from_json,
    access_state,
    apply_access_changes,
    newly_revoked,
)
from sdn_controller.nbi_network import NodeEndpoints, network_config, network_state
from sdn_controller.nbi_notifications import (
    link_alarm,
    node_alarm,
    phys_link_overloaded,
    phys_link_perf_update,
    resource_new,
    resource_removed,
    restoration_failed,
    svc_link_path_update,
    svc_link_perf_update,
)
from sdn_controller.nbi_server import NBI_MODULES, merge_json
from sdn_controller.nbi_service_links import sessions_by_link, svc_links_state
from sdn_controller.path_restoration import PathRestoration, RestorationType
from sdn_controller.routing import GraphRouter
from sdn_controller.session_config import QoS
from sdn_controller.topology_db import InterfaceInfo, NodeInfo
from sdn_controller.user_db import Application, User, UserDb

TOPO = parse_topology({
    "name": "line",
    "nodes": [{"name": "a", "location": "lab"}, {"name": "b"}, {"name": "c"}],
    "links": [{"a": "a", "b": "b", "length_km": 10}, {"a": "b", "b": "c", "length_km": 12.5}],
    "slas": [{"name": "std", "max_bps": 100000, "max_priority": 5}],
    "users": [{"name": "ua", "sla": "std"}, {"name": "uc", "sla": "std", "peers": ["ua"]}],
    "saes": [{"id": "sae-a", "node": "a", "user": "ua"},
             {"id": "sae-c", "node": "c", "user": "uc"}],
})
IDS = {n.name: n.qkdn_id for n in TOPO.nodes}
AB, BC = (lk.qkdl_id for lk in TOPO.links)


@pytest.fixture(scope="module")
def ctx():
    context = load_context(modules=NBI_MODULES)
    yield context
    context.destroy()


def validate_data(ctx, document, *, config_only=False):
    tree = ctx.parse_data_mem(json.dumps(document), "json", strict=True, no_state=config_only,
                              validate_present=True)
    try:
        return json.loads(tree.print_mem("json", with_siblings=True))
    finally:
        tree.free()


def validate_whole(ctx, config, state):
    """Configuration and state merged by libyang (as the server's <get> does), validated."""
    tree = ctx.parse_data_mem(json.dumps(config), "json", strict=True, no_state=True,
                              validate_present=True)
    try:
        extra = ctx.parse_data_mem(json.dumps(state), "json", strict=True, parse_only=True)
        tree.merge(extra, with_siblings=True, destruct=True)
        tree.validate(validate_present=True)
        return json.loads(tree.print_mem("json", with_siblings=True))
    finally:
        tree.free()


def validate_notification(ctx, body):
    node = ctx.parse_op_mem("json", json.dumps(body), libyang.DataType.NOTIF_YANG)
    node.free()


def links():
    return [LinkMetrics(AB, IDS["a"], IDS["b"], LinkStatus.ACTIVE, skr=90000, eskr=80000,
                        expected_consumption=10000, qber=0.021, stored_bits=524288,
                        updated_at=1_800_000_000.5),
            LinkMetrics(BC, IDS["b"], IDS["c"], LinkStatus.ACTIVE, skr=70000, eskr=60000,
                        qber=0.034, stored_bits=262144, overloaded=True)]


def active_session():
    users = UserDb.open()
    users.load_topology(TOPO)
    router = GraphRouter(links)
    now = [100.0]
    admission = AdmissionControl(users, router, clock=lambda: now[0],
                                 new_session_id=lambda: "55555551-5555-4555-8555-555555555551")
    sla = users.sla("std")
    admission.request_config(ConfigRequest(IDS["a"], "sae-a", "sae-c", "ua", "std",
                                           QoS(max_bps=8192)))
    now[0] = 101.0
    admission.request_config(ConfigRequest(IDS["c"], "sae-c", "sae-a", "uc", "std",
                                           QoS(max_bps=8192)))
    assert sla is not None
    (view,) = admission.sessions()
    assert view.state is SessionState.ACTIVE
    return users, view


def test_service_links_show_key_provenance_per_kind(ctx):
    """Hybrid provisioning (ADR 0009): policy, current mode and keys per kind of key reach
    the north-bound model (and through it the orchestrator), validated by libyang."""
    users = UserDb.open()
    users.load_topology(TOPO)
    now = [100.0]
    admission = AdmissionControl(users, GraphRouter(links), clock=lambda: now[0],
                                 new_session_id=lambda: "55555551-5555-4555-8555-555555555552")
    for node, sae, peer, user in (("a", "sae-a", "sae-c", "ua"), ("c", "sae-c", "sae-a", "uc")):
        admission.request_config(ConfigRequest(IDS[node], sae, peer, user, "std",
                                               QoS(max_bps=8192)))
    (view,) = admission.sessions()
    admission.record_delivery(view.session_id, IDS["a"], {"qkd": (3, 768), "hybrid": (2, 512)})
    admission.record_delivery(view.session_id, IDS["c"], {"qkd": (9, 9)})  # responder: ignored
    admission.set_key_mode(view.session_id, "hybrid")
    (view,) = admission.sessions()
    state = svc_links_state([view], restoration_of=lambda v: PathRestoration(
        RestorationType.AUTOMATIC, 0), restorations={}, links={m.qkdl_id: m for m in links()},
        to_wall=lambda t: t + 1_800_000_000)
    config = merge_json(network_config(TOPO), access_config(access_of(users)))
    whole = validate_whole(ctx, config, state)
    (svc,) = whole["qkdn-sdn-topology:qkd_network"]["qkd_links"]["svc_links"]["svc_link"]
    details = svc["qkdn-sdn-inventory:svc_link_details"]
    assert details["key_provenance"] == {
        "fallback_policy": "qkd-only", "key_mode": "hybrid",
        "delivered": [{"provenance": "hybrid", "keys": "2", "bits": "512"},
                      {"provenance": "qkd", "keys": "3", "bits": "768"}]}
    assert details["qkdl_performance"]["keys_delivered"] == "5"
    assert details["qkdl_performance"]["bits_delivered"] == "1280"


def access_of(users):
    return access_data(users.slas(), {}, users.users(), users.applications())


def test_config_and_state_of_the_whole_network_validate(ctx):
    users, view = active_session()
    config = merge_json(network_config(TOPO), access_config(access_of(users)))
    validated = validate_data(ctx, config, config_only=True)
    network = validated["qkdn-sdn-topology:qkd_network"]
    assert [n["qkdn_name"] for n in network["sdqkd_nodes"]["sdqkd_node"]] == ["a", "b", "c"]
    (link_ab, link_bc) = network["qkd_links"]["phys_links"]["phys_link"]
    assert link_ab["qkdl_local"] == {"qkdn_id": IDS["a"], "qkdi_id": 1}
    assert link_bc["qkdn-sdn-inventory:phys_link_details"]["phys_length"] == "12.5"

    nodes = [NodeInfo(IDS[n], n, "OPERATING", None, "0.1.0", 1_800_000_000.0) for n in "abc"]
    ifaces = [InterfaceInfo(IDS["a"], 1, "qkdn twin", "DV-QKD", "TRANSMITTER", "ENABLED")]
    state = network_state(nodes, ifaces, links(), connected={IDS["a"]: True, IDS["b"]: True},
                          endpoints={IDS["a"]: NodeEndpoints("https://127.0.0.1:1/api/v1/keys",
                                                             None, "127.0.0.1", 830)},
                          svc_links_by_link=sessions_by_link([view]))
    restoration = PathRestoration(RestorationType.MANUAL, 2000)
    merge_json(state, svc_links_state([view], restoration_of=lambda v: restoration,
                                      restorations={view.session_id: 2},
                                      links={m.qkdl_id: m for m in links()},
                                      to_wall=lambda t: t + 1_800_000_000))
    merge_json(state, access_state(access_of(users), {"sae-a": 1, "sae-c": 1}))
    whole = validate_whole(ctx, config, state)
    network = whole["qkdn-sdn-topology:qkd_network"]
    statuses = {n["qkdn_name"]: n["qkdn_status"] for n in network["sdqkd_nodes"]["sdqkd_node"]}
    assert statuses == {"a": "etsi-qkd-node-types:OPERATING",
                        "b": "etsi-qkd-node-types:OPERATING", "c": "etsi-qkd-node-types:OUT"}
    perf = network["qkd_links"]["phys_links"]["phys_link"][0][
        "qkdn-sdn-inventory:phys_link_details"]["qkdl_performance"]
    assert perf["skr"] == 90000 and perf["svc_link_count"] == 1
    assert perf["phys_perf"][0]["value"] == "0.021"
    (svc,) = network["qkd_links"]["svc_links"]["svc_link"]
    assert [h["qkdn_id"] for h in svc["paths"]["path"][0]["hop"]] == [IDS["a"], IDS["b"],
                                                                      IDS["c"]]
    assert svc["paths"]["path"][0]["hop"][0]["phys_link"] == AB
    details = svc["qkdn-sdn-inventory:svc_link_details"]
    assert details["bandwidth"] == 8192 and details["restorations"] == 2
    assert details["path_restoration"] == {"restoration_type": "qkdn-sdn-access:MANUAL",
                                           "hold_off_time": 2000}
    # bottleneck rate, worst QBER, lowest key store over the path
    assert details["qkdl_performance"]["skr"] == 70000
    assert details["qkdl_performance"]["phys_perf"][0]["value"] == "0.034"
    assert details["qkdl_performance"]["key_store"]["stored_key_bits"] == "262144"
    assert details["creation_time"] == "2027-01-15T08:01:40.000+00:00"  # canonical
    users_state = {u["name"]: u["active_sessions"]
                   for u in whole["qkdn-sdn-access:qkd_access"]["users"]["user"]}
    assert users_state == {"ua": 1, "uc": 1}


def test_access_round_trip_and_changes():
    users, _ = active_session()
    data = access_of(users)
    names = {v: k for k, v in IDS.items()}
    assert access_from_json(access_config(data), names) == data
    # an orchestrator's edit: a new profile with manual restoration, a user on it, a revoke
    edited = json.loads(json.dumps(access_config(data)))
    root = edited["qkdn-sdn-access:qkd_access"]
    root["sla_profiles"]["sla_profile"].append({
        "name": "premium", "max_bandwidth": 4000000, "fallback": "hybrid",
        "path_restoration": {"restoration_type": "qkdn-sdn-access:MANUAL",
                             "hold_off_time": 500}})
    root["users"]["user"].append({"name": "bank", "sla_profile": "premium"})
    root["users"]["user"][0].update(revoked=True, revoked_reason="contract ended")
    root["applications"]["application"].append({"sae_id": "bank-gw", "user": "bank",
                                                "qkdn_id": IDS["b"]})
    new = access_from_json(edited, names)
    changes = access_changes(data, new)
    kinds = [(c.kind, c.name) for c in changes]
    assert kinds == [(ChangeKind.PUT_SLA, "premium"), (ChangeKind.PUT_USER, "bank"),
                     (ChangeKind.REVOKE_USER, "ua"), (ChangeKind.PUT_APPLICATION, "bank-gw")]
    assert newly_revoked(changes) == (frozenset({"ua"}), frozenset())
    apply_access_changes(users, changes)
    assert users.sla("premium").fallback is FallbackPolicy.HYBRID
    assert users.restoration("premium") == PathRestoration(RestorationType.MANUAL, 500)
    assert users.user("ua").revoked and users.user("ua").revoked_reason == "contract ended"
    assert users.application("bank-gw").node_name == "b"
    assert access_of_with_restorations(users) == new
    # deleting: applications before their user, users before their profile
    back = access_changes(new, data)
    assert [(c.kind, c.name) for c in back] == [
        (ChangeKind.REINSTATE_USER, "ua"), (ChangeKind.DELETE_APPLICATION, "bank-gw"),
        (ChangeKind.DELETE_USER, "bank"), (ChangeKind.DELETE_SLA, "premium")]
    apply_access_changes(users, back)
    assert access_of(users) == data


def access_of_with_restorations(users):
    slas = users.slas()
    return access_data(slas, {s.name: users.restoration(s.name) for s in slas},
                       users.users(), users.applications())


def test_a_failing_change_leaves_the_database_as_it_was():
    users = UserDb.open()
    users.load_topology(TOPO)
    before = access_of(users)
    changes = access_changes(before, AccessData(
        slas=dict(before.slas), users={**before.users, "x": User("x", "std")},
        applications={**before.applications,
                      "gw": Application("gw", "nobody", "a", IDS["a"])}))
    with pytest.raises(DatabaseError):
        apply_access_changes(users, changes)
    assert users.user("x") is None and access_of(users) == before


def test_sla_access_config_spells_defaults_and_restoration(ctx):
    data = AccessData(slas={"gold": (SlaProfile("gold", 5000, 100, 3, 4, 30, False),
                                     PathRestoration(RestorationType.MANUAL, 250))})
    (profile,) = validate_data(ctx, access_config(data), config_only=True)[
        "qkdn-sdn-access:qkd_access"]["sla_profiles"]["sla_profile"]
    assert profile["allow_lower_rate"] is False and profile["idle_timeout"] == 30
    assert profile["path_restoration"]["restoration_type"] == "qkdn-sdn-access:MANUAL"


def test_notifications_validate(ctx):
    _, view = active_session()
    ab, bc = links()
    by_id = {ab.qkdl_id: ab, bc.qkdl_id: bc}
    bodies = [
        resource_new("svc_link", qkdl_id=view.session_id),
        resource_new("sdqkd_node", qkdn_id=IDS["a"], qkdn_name="a"),
        resource_removed("svc_link", "closed", qkdl_id=view.session_id),
        phys_link_perf_update(ab),
        phys_link_overloaded(bc, {view.session_id}),
        svc_link_perf_update(view, by_id),
        svc_link_path_update(view, "admitted"),
        link_alarm(AlarmEvent(AlarmKind.QBER_HIGH, AB, Severity.MAJOR, "QBER 0.16", 1.0), ab,
                   {view.session_id}),
        link_alarm(AlarmEvent(AlarmKind.LINK_RESTORED, AB, Severity.MINOR, "back", 1.0), None,
                   ()),
        node_alarm(IDS["b"], "b", reachable=False, message="lost"),
        restoration_failed(view.session_id, "no route"),
    ]
    for body in bodies:
        validate_notification(ctx, body)
    alarm = bodies[7]["qkdn-sdn-inventory:alarm"]
    assert alarm["alarm_type"] == "qkdn-sdn-inventory:QBER-HIGH" and alarm["cleared"] is False
    assert alarm["affected_svc_link"] == [view.session_id]
    assert bodies[8]["qkdn-sdn-inventory:alarm"]["cleared"] is True
    path = bodies[6]["qkdn-sdn-inventory:svc_link_path_update"]
    assert [h["qkdn_id"] for h in path["paths"]["path"][0]["hop"]] == [IDS[n] for n in "abc"]


def test_an_invalid_status_is_caught_by_the_model(ctx):
    nodes = [NodeInfo(IDS["a"], "a", "SLEEPING", None, None, None)]
    state = network_state(nodes, [], [], connected={IDS["a"]: True}, endpoints={},
                          svc_links_by_link={})
    with pytest.raises(libyang.LibyangError):
        validate_whole(ctx, network_config(TOPO), state)


def test_network_edits_may_change_details_not_structure():
    import copy

    from qkd_agent.rpc_error import RpcError
    from sdn_controller.nbi_server import _network_changes

    old = network_config(TOPO)
    new = copy.deepcopy(old)
    link = new["qkdn-sdn-topology:qkd_network"]["qkd_links"]["phys_links"]["phys_link"][1]
    link["qkdn-sdn-inventory:phys_link_details"].update(qkdl_enable=False, phys_length="13")
    (change,) = _network_changes(old, new)
    assert (change.kind, change.payload) == ("enable", (BC, False))
    assert _network_changes(new, old)[0].payload == (BC, True)
    moved = copy.deepcopy(old)
    moved["qkdn-sdn-topology:qkd_network"]["qkd_links"]["phys_links"]["phys_link"][1][
        "qkdl_remote"]["qkdn_id"] = IDS["a"]
    with pytest.raises(RpcError) as refused:
        _network_changes(old, moved)
    assert refused.value.tag == "operation-not-supported"
    fewer = copy.deepcopy(old)
    fewer["qkdn-sdn-topology:qkd_network"]["sdqkd_nodes"]["sdqkd_node"].pop()
    with pytest.raises(RpcError):
        _network_changes(old, fewer)


def test_merge_json_merges_containers_and_keeps_both_branches():
    merged = merge_json({"m:a": {"x": {"y": 1}}, "m:b": [1]},
                        {"m:a": {"x": {"z": 2}, "w": 3}, "m:b": [2]})
    assert merged == {"m:a": {"x": {"y": 1, "z": 2}, "w": 3}, "m:b": [2]}
