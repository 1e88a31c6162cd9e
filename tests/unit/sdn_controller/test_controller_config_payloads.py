"""Golden payloads and YANG validation of the edit-configs sent to the KMs of a path."""

import copy
from pathlib import Path

import libyang
import pytest
from lxml import etree

from qkdn.namespaces import NETCONF_BASE_NS
from sdn_controller.config_payloads import session_config_payload, session_delete_payload, to_xml
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import build_graph, route_session
from sdn_controller.session_config import KmRole, QoS, build_km_configs, token_bucket_for

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
GOLDEN = HERE / "golden"
ETSI_VALIDATION = REPO.parent / "shared" / "reference" / "etsi-yang" / "validation"
PROJECT_YANG = REPO / "yang"

N = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(6)]
L = [f"10000000-0000-0000-0000-00000000000{i}" for i in range(6)]
SESSION = "5e55105e-0000-4000-8000-000000000001"
QOS = QoS(max_bps=8000, min_bps=1000, priority=3, ttl_s=600, key_chunk_size=32)


def configs_for(links, src, dst, rate=8000, generation=0):
    route = route_session(build_graph(links), src, dst, rate)
    return build_km_configs(session_id=SESSION, generation=generation, route=route,
                            initiator=("sae-a", src), responder=("sae-b", dst), qos=QOS,
                            priority=3, idle_timeout_s=60,
                            bucket=token_bucket_for(rate, burst_s=2.0))


def two_hop():
    return configs_for([LinkMetrics(L[0], N[2], N[0], LinkStatus.ACTIVE, skr=10**5),
                        LinkMetrics(L[1], N[0], N[3], LinkStatus.ACTIVE, skr=10**5)],
                       N[2], N[3])


def one_hop():
    return configs_for([LinkMetrics(L[5], N[4], N[5], LinkStatus.ACTIVE, skr=10**5)],
                       N[4], N[5])


def split():
    return configs_for([LinkMetrics(L[0], N[1], N[0], LinkStatus.ACTIVE, skr=5000),
                        LinkMetrics(L[1], N[0], N[2], LinkStatus.ACTIVE, skr=5000),
                        LinkMetrics(L[2], N[1], N[3], LinkStatus.ACTIVE, skr=5000),
                        LinkMetrics(L[3], N[3], N[2], LinkStatus.ACTIVE, skr=5000)],
                       N[1], N[2], rate=8000)


def all_payloads():
    out = {}
    for name, configs in (("two_hop", two_hop()), ("one_hop", one_hop()), ("split", split())):
        for c in configs:
            out[f"{name}_{c.role.value}_{c.node_id[-1]}_install"] = session_config_payload(c)
            out[f"{name}_{c.role.value}_{c.node_id[-1]}_delete"] = session_delete_payload(c)
    return out


@pytest.mark.parametrize("name", sorted(all_payloads()))
def test_golden_payloads(name):
    text = to_xml(all_payloads()[name], pretty=True)
    golden = GOLDEN / f"{name}.xml"
    assert golden.exists(), f"missing golden file {golden.name}"
    assert text == golden.read_text()


def test_roles_and_forwarding_rules_of_two_hop_path():
    src, relay, dst = two_hop()
    assert (src.role, relay.role, dst.role) == (KmRole.SOURCE, KmRole.RELAY, KmRole.DESTINATION)
    ns = {"e": "urn:etsi:qkd:yang:etsi-qkd-node"}
    relay_xml = session_config_payload(relay)
    assert relay_xml.xpath("//e:virt_prev_hop/text()", namespaces=ns) == [N[2]]
    assert relay_xml.xpath("//e:virt_next_hop/text()", namespaces=ns) == [N[3]]
    assert relay_xml.xpath("//e:server_app_id", namespaces=ns) == []  # relay: no SAE ids
    src_xml = session_config_payload(src)
    assert src_xml.xpath("//e:virt_prev_hop", namespaces=ns) == []
    assert src_xml.xpath("//e:virt_next_hop/text()", namespaces=ns) == [N[0]]


def test_one_hop_uses_physical_link_and_no_virtual_link():
    for c in one_hop():
        xml = session_config_payload(c)
        ns = {"e": "urn:etsi:qkd:yang:etsi-qkd-node"}
        assert xml.xpath("//e:backing_qkdl_id/text()", namespaces=ns) == [L[5]]
        assert xml.xpath("//e:qkd_link", namespaces=ns) == []


def test_split_session_has_one_virtual_link_per_leg():
    by_role = {c.role: c for c in split() if c.role is not KmRole.RELAY}
    ns = {"e": "urn:etsi:qkd:yang:etsi-qkd-node"}
    xml = session_config_payload(by_role[KmRole.SOURCE])
    bandwidths = sorted(int(b) for b in xml.xpath("//e:virt_bandwidth/text()", namespaces=ns))
    assert sum(bandwidths) == 8000 and len(bandwidths) == 2
    assert len(xml.xpath("//e:backing_qkdl_id", namespaces=ns)) == 2


def test_partial_delete_keeps_the_app():
    from dataclasses import replace
    src = two_hop()[0]
    xml = session_delete_payload(replace(src, partial=True))
    ns = {"e": "urn:etsi:qkd:yang:etsi-qkd-node"}
    assert xml.xpath("//e:qkd_app", namespaces=ns) == []
    assert len(xml.xpath("//e:qkd_link", namespaces=ns)) == 1


# --- YANG validation -------------------------------------------------------------------------
def load_modules(folder):
    ctx = libyang.Context(str(folder))
    for file in sorted(Path(folder).glob("*.yang")):
        ctx.load_module(file.stem.split("@", 1)[0]).feature_enable_all()
    return ctx


def as_data(payload):
    """The <config> body as plain data (edit-config attributes removed)."""
    body = copy.deepcopy(payload[0])
    for element in body.iter():
        element.attrib.pop(f"{{{NETCONF_BASE_NS}}}operation", None)
    return etree.tostring(body, encoding="unicode")


def validate_all(ctx, payloads):
    for name, payload in payloads.items():
        try:
            tree = ctx.parse_data_mem(as_data(payload), "xml", no_state=True, strict=True,
                                      validate_present=True)
        except libyang.LibyangError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
        tree.free()


def test_install_payloads_valid_under_the_standards_own_model():
    """Without our extension leaves, every payload is valid ETSI 015 (official modules with
    the when-erratum corrected, from ../shared)."""
    ctx = load_modules(ETSI_VALIDATION)
    payloads = {}
    for configs in (two_hop(), one_hop(), split()):
        for c in configs:
            payloads[f"{c.node_id}-{c.role.value}"] = session_config_payload(
                c, with_extensions=False)
            payloads[f"{c.node_id}-{c.role.value}-delete"] = session_delete_payload(c)
    validate_all(ctx, payloads)
    ctx.destroy()


def test_payloads_valid_under_the_projects_yang_modules():
    """Every payload, extension leaves included, against every module in yang/."""
    assert (PROJECT_YANG / "qkdn-key-manager.yang").exists()
    ctx = load_modules(PROJECT_YANG)
    validate_all(ctx, all_payloads())
    ctx.destroy()


def test_validation_catches_a_broken_payload():
    ctx = load_modules(ETSI_VALIDATION)
    payload = session_config_payload(two_hop()[1], with_extensions=False)
    ns = {"e": "urn:etsi:qkd:yang:etsi-qkd-node"}
    payload.xpath("//e:virt_bandwidth", namespaces=ns)[0].text = "-5"
    with pytest.raises(AssertionError):
        validate_all(ctx, {"broken": payload})
    ctx.destroy()


def test_merged_payloads_hold_every_entry_and_stay_valid():
    from sdn_controller.config_payloads import merge_payloads
    relays = [c for c in two_hop() if c.role is KmRole.RELAY]
    other = [c for c in configs_for([LinkMetrics(L[0], N[2], N[0], LinkStatus.ACTIVE, skr=10**5),
                                     LinkMetrics(L[1], N[0], N[3], LinkStatus.ACTIVE, skr=10**5)],
                                    N[2], N[3], generation=1)
             if c.role is KmRole.RELAY]
    other = [c.__class__(**{**c.__dict__, "session_id": "5e55105e-0000-4000-8000-000000000002"})
             for c in other]
    merged = merge_payloads([session_config_payload(relays[0]),
                             session_config_payload(other[0])])
    ns = {"e": "urn:etsi:qkd:yang:etsi-qkd-node"}
    assert len(merged.xpath("//e:qkd_app", namespaces=ns)) == 2
    assert len(merged.xpath("//e:qkd_node", namespaces=ns)) == 1
    ctx = load_modules(PROJECT_YANG)
    validate_all(ctx, {"merged": merged})
    ctx.destroy()
    with pytest.raises(ValueError):
        merge_payloads([session_config_payload(two_hop()[0]),
                        session_config_payload(two_hop()[1])])


def test_deleting_entries_already_gone_is_idempotent():
    """Deletions use nc:operation="remove": an agent's datastore (the real one, in memory)
    accepts the deletion of a session an orphan removal took away first, and a repeated
    deletion, where "delete" answered data-missing for the whole edit."""
    from qkd_agent.datastore import Datastore
    from qkd_agent.rpc_error import RpcError
    from qkd_agent.yang_context import load_context
    from sdn_controller.config_payloads import orphan_delete_payload

    relay = next(c for c in two_hop() if c.role is KmRole.RELAY)
    node = {"qkdn_id": relay.node_id, "qkd_links": {"qkd_link": [
        {"qkdl_id": link, "qkdl_type": "etsi-qkd-node-types:PHYS"} for link in (L[0], L[1])]}}
    store = Datastore(load_context(), {"etsi-qkd-sdn-node:qkd_node": node})
    empty = store.running_json()
    store.edit_config(session_config_payload(relay))
    installed = store.running_json()
    assert installed != empty
    store.edit_config(session_delete_payload(relay))
    assert store.running_json() == empty
    store.edit_config(session_delete_payload(relay))    # again: nothing left, no error
    store.edit_config(session_config_payload(relay))
    store.edit_config(orphan_delete_payload(relay.node_id, [relay.session_id],
                                            [h.link_id for h in relay.hops]))
    store.edit_config(session_delete_payload(relay))    # the race of the 100-node run
    assert store.running_json() == empty
    strict = session_delete_payload(relay)
    for element in strict.iter():
        if element.get(f"{{{NETCONF_BASE_NS}}}operation"):
            element.set(f"{{{NETCONF_BASE_NS}}}operation", "delete")
    with pytest.raises(RpcError, match="does not exist"):
        store.edit_config(strict)   # what "delete" did: the whole edit refused
