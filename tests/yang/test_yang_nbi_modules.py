"""The controller's north-bound YANG modules (shaped after ETSI GS QKD 018).

qkdn-sdn-topology, qkdn-sdn-inventory and qkdn-sdn-access: clean under pyang --strict, trees
committed, loadable by libyang together with every other module of yang/, a six-node network
with seven physical links and three service links validates (config and state), RPCs and
notifications validate, and invalid data is rejected with the model's own reasons.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import libyang
import pytest

from qkdn import namespaces

TOPO = namespaces.QKDN_TOPO_MODULE
INV = namespaces.QKDN_INV_MODULE
ACC = namespaces.QKDN_ACC_MODULE
TYPES = namespaces.ETSI_TYPES_MODULE
NBI_MODULES = (TOPO, INV, ACC)
MODULE_FILES = sorted(path.stem for path in namespaces.YANG_DIR.glob("*.yang"))


def node_id(n: int) -> str:
    return f"0000000{n}-0000-4000-8000-00000000000{n}"


def link_id(n: int) -> str:
    return f"1111111{n}-1111-4111-8111-11111111111{n}"


def svc_id(n: int) -> str:
    return f"5555555{n}-5555-4555-8555-55555555555{n}"


#: Six nodes; a star around node 0, plus 4-5 and 1-2: seven physical links.
LINK_ENDS = ((0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (4, 5), (1, 2))
#: Three service links: 0-1 and 4-5 direct, 2-3 through trusted node 0.
SERVICES = (
    (0, "sae-0", "user-0", "sae-1", "user-1", ((0, 0), (1, None))),
    (1, "sae-2", "user-2", "sae-3", "user-3", ((2, 1), (0, 2), (3, None))),
    (2, "sae-4", "user-4", "sae-5", "user-5", ((4, 5), (5, None))),
)


@pytest.fixture(scope="module")
def ctx(yang_dir: Path):
    """A libyang context with every module of yang/ implemented (as the agent loads them)."""
    context = libyang.Context(str(yang_dir))
    for name in MODULE_FILES:
        context.load_module(name).feature_enable_all()
    yield context
    context.destroy()


def interfaces_of(node: int) -> list[int]:
    """qkdi_id of node's interface for each link it ends: the link's index + 1."""
    return [i + 1 for i, ends in enumerate(LINK_ENDS) if node in ends]


def network(*, with_state: bool = True) -> dict:
    """RFC 7951 JSON of the whole north-bound datastore: topology, inventory, access."""
    nodes = []
    for n in range(6):
        node = {
            "qkdn_id": node_id(n),
            "qkdn_name": str(n),
            "qkd_interfaces": {
                "qkd_interface": [{"qkdi_id": i} for i in interfaces_of(n)]
            },
            f"{INV}:qkdn_details": {"qkdn_location_id": "hub" if n == 0 else f"site-{n}"},
        }
        if with_state:
            node["qkdn_status"] = f"{TYPES}:OPERATING"
            for interface in node["qkd_interfaces"]["qkd_interface"]:
                interface["qkdi_status"] = f"{TYPES}:ENABLED"
                interface[f"{INV}:qkdi_details"] = {
                    "qkdi_model": "qkdn twin decoy-BB84",
                    "qkdi_type": f"{TYPES}:DV-QKD",
                    "qkdi_capabilities": {"role_support": f"{TYPES}:TRANSCEIVER"},
                }
            details = node[f"{INV}:qkdn_details"]
            details["qkdn_version"] = "0.1.0"
            details["qkdn_capabilities"] = {"key_relay_mode_enable": True}
            details["kme"] = {
                "etsi014_url": f"https://127.0.0.1:{8400 + n}/api/v1/keys",
                "etsi004_url": f"https://127.0.0.1:{8500 + n}/api/v1/004",
                "netconf_host": "127.0.0.1",
                "netconf_port": 8300 + n,
                "key_store_capacity": "8388608",
            }
            details["last_seen"] = "2026-11-27T03:00:00Z"
        nodes.append(node)

    phys_links = []
    for index, (a, b) in enumerate(LINK_ENDS):
        link = {
            "qkdl_id": link_id(index),
            "qkdl_local": {"qkdn_id": node_id(a), "qkdi_id": index + 1},
            "qkdl_remote": {"qkdn_id": node_id(b), "qkdi_id": index + 1},
            f"{INV}:phys_link_details": {
                "qkdl_enable": True,
                "phys_channel_att": "4.000",
                "phys_wavelength": "20",
                "phys_length": "20.000",
            },
        }
        if with_state:
            link["qkdl_status"] = f"{TYPES}:ACTIVE"
            link[f"{INV}:phys_link_details"]["qkdl_performance"] = {
                "expected_consumption": 8192,
                "skr": 120000,
                "eskr": 110000,
                "phys_perf": [{"perf_type": f"{TYPES}:QBER", "value": "0.021"}],
                "key_store": {"stored_key_bits": "524288", "capacity_bits": "8388608"},
                "svc_link_count": 1,
                "overloaded": False,
                "updated": "2026-11-27T03:00:01Z",
            }
        phys_links.append(link)

    top = {
        f"{TOPO}:qkd_network": {
            "qkd_network_id": "99999999-9999-4999-8999-999999999999",
            "qkd_network_name": "paper",
            "sdqkd_nodes": {"sdqkd_node": nodes},
            "qkd_links": {"phys_links": {"phys_link": phys_links}},
        },
        f"{ACC}:qkd_access": access(),
    }
    if with_state:
        top[f"{TOPO}:qkd_network"]["qkd_links"]["svc_links"] = {
            "svc_link": [service_link(*service) for service in SERVICES]
        }
        for user in top[f"{ACC}:qkd_access"]["users"]["user"]:
            user["active_sessions"] = 1
    return top


def service_link(index, local_sae, local_user, remote_sae, remote_user, hops) -> dict:
    return {
        "qkdl_id": svc_id(index),
        "qkdl_local": {"qkdn_id": node_id(hops[0][0])},
        "qkdl_remote": {"qkdn_id": node_id(hops[-1][0])},
        "qkdl_status": f"{TYPES}:ACTIVE",
        "paths": {"path": [path(hops)]},
        f"{INV}:svc_link_details": {
            "local_app": {"sae_id": local_sae, "user": local_user},
            "remote_app": {"sae_id": remote_sae, "user": remote_user},
            "session_state": "active",
            "state_reason": "admitted",
            "bandwidth": 8192,
            "requested_bandwidth": 8192,
            "priority": 2,
            "idle_timeout": 60,
            "creation_time": "2026-11-27T03:00:00Z",
            "last_activity": "2026-11-27T03:00:02Z",
            "path_restoration": {
                "restoration_type": f"{ACC}:AUTOMATIC",
                "hold_off_time": 500,
            },
            "restorations": 0,
            "qkdl_performance": {
                "skr": 120000,
                "eskr": 110000,
                "phys_perf": [{"perf_type": f"{TYPES}:QBER", "value": "0.021"}],
                "key_store": {"stored_key_bits": "524288"},
                "key_requests": "12",
                "keys_delivered": "48",
                "bits_delivered": "12288",
            },
        },
    }


def path(hops, index: int = 0) -> dict:
    entries = []
    for position, (node, link) in enumerate(hops):
        hop = {"hop_index": position, "qkdn_id": node_id(node)}
        if link is not None:
            hop["phys_link"] = link_id(link)
        entries.append(hop)
    return {"path_index": index, "hop": entries}


def access() -> dict:
    return {
        "sla_profiles": {
            "sla_profile": [
                {
                    "name": "standard",
                    "max_bandwidth": 1000000,
                    "min_bandwidth": 1024,
                    "max_priority": 5,
                    "max_sessions": 16,
                    "idle_timeout": 60,
                },
                {
                    "name": "premium",
                    "max_bandwidth": 4000000,
                    "min_bandwidth": 1024,
                    "max_priority": 9,
                    "max_sessions": 64,
                    "idle_timeout": 300,
                    "fallback": "hybrid",
                    "path_restoration": {
                        "restoration_type": f"{ACC}:MANUAL",
                        "hold_off_time": 2000,
                    },
                },
            ]
        },
        "users": {
            "user": [
                {"name": f"user-{n}", "sla_profile": "premium" if n < 2 else "standard"}
                for n in range(6)
            ]
        },
        "applications": {
            "application": [
                {"sae_id": f"sae-{n}", "user": f"user-{n}", "qkdn_id": node_id(n)}
                for n in range(6)
            ]
        },
    }


def parse(ctx: libyang.Context, data: dict, *, config_only: bool = False) -> dict:
    """Parse and fully validate RFC 7951 JSON; return libyang's printout (defaults included)."""
    tree = ctx.parse_data_mem(
        json.dumps(data), "json", strict=True, validate_present=True, no_state=config_only
    )
    try:
        return json.loads(tree.print_mem("json", with_siblings=True, include_implicit_defaults=True))
    finally:
        tree.free()


def parse_operation(ctx: libyang.Context, body: dict, dtype: libyang.DataType) -> None:
    """Parse and validate an RFC 7951 JSON notification, RPC input or RPC output."""
    operation = ctx.parse_op_mem("json", json.dumps(body), dtype)
    try:
        operation.validate_op(dtype)
    finally:
        operation.free()


def notify(ctx: libyang.Context, body: dict) -> None:
    parse_operation(ctx, body, libyang.DataType.NOTIF_YANG)


# --------------------------------------------------------------------------------------------
# the modules themselves
# --------------------------------------------------------------------------------------------


def test_yang_nbi_modules_are_in_the_yang_folder():
    assert set(NBI_MODULES) <= set(MODULE_FILES)


@pytest.mark.parametrize("module", NBI_MODULES)
def test_yang_nbi_module_is_strict_clean_without_warnings(module, yang_dir, run_pyang):
    result = run_pyang("--strict", str(yang_dir / f"{module}.yang"), path=(yang_dir,))
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize("module", NBI_MODULES)
def test_yang_nbi_committed_tree_matches_pyang(module, yang_dir, run_pyang):
    result = run_pyang("-f", "tree", str(yang_dir / f"{module}.yang"), path=(yang_dir,))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (yang_dir / f"{module}.tree").read_text(), (
        f"yang/{module}.tree is stale; regenerate it as yang/README.md explains"
    )


def test_yang_nbi_modules_match_namespace_constants(ctx):
    expected = {
        TOPO: (namespaces.QKDN_TOPO_NS, namespaces.QKDN_TOPO_PREFIX, namespaces.QKDN_TOPO_REVISION),
        INV: (namespaces.QKDN_INV_NS, namespaces.QKDN_INV_PREFIX, namespaces.QKDN_INV_REVISION),
        ACC: (namespaces.QKDN_ACC_NS, namespaces.QKDN_ACC_PREFIX, namespaces.QKDN_ACC_REVISION),
    }
    for name, (namespace, prefix, revision) in expected.items():
        module = ctx.get_module(name)
        assert module.implemented()
        assert f'namespace "{namespace}";' in module.print_mem("yang")
        assert module.prefix() == prefix
        assert next(module.revisions()).date() == revision


def test_yang_nbi_modules_reuse_etsi_types_instead_of_redefining_them(yang_dir):
    """Statuses, severities, perf types, wavelengths come from etsi-qkd-node-types."""
    etsi_names = set(
        re.findall(
            r"^\s*(?:identity|typedef)\s+([\w-]+)",
            (yang_dir / f"{TYPES}.yang").read_text(),
            re.MULTILINE,
        )
    )
    for module in NBI_MODULES:
        text = (yang_dir / f"{module}.yang").read_text()
        ours = set(re.findall(r"^\s*(?:identity|typedef)\s+([\w-]+)", text, re.MULTILINE))
        assert not ours & etsi_names, f"{module} redefines {ours & etsi_names}"
    topology = (yang_dir / f"{TOPO}.yang").read_text()
    assert "etsi-qkdn-types:link-status-types" in topology
    assert "etsi-qkdn-types:qkdn-status-types" in topology


def test_yang_nbi_identifiers_are_snake_case(ctx):
    for name in NBI_MODULES:
        for top in ctx.get_module(name).children():
            for node in top.iter_tree():
                assert re.fullmatch(r"[a-z][a-z0-9_]*", node.name()), f"{name}: {node.name()}"


def test_yang_nbi_modules_add_no_data_to_an_agent_datastore():
    """The agent loads every module of yang/: ours must leave its running config alone."""
    from qkd_agent.datastore import Datastore
    from qkd_agent.yang_context import load_context

    context = load_context()
    try:
        store = Datastore(context, {f"{namespaces.ETSI_NODE_MODULE}:qkd_node": {"qkdn_id": node_id(1)}})
        assert list(store.running_json()) == [f"{namespaces.ETSI_NODE_MODULE}:qkd_node"]
        data = store.get_config(None)
        assert all(namespaces.QKDN_TOPO_NS not in (child.tag or "") for child in data)
    finally:
        context.destroy()


# --------------------------------------------------------------------------------------------
# instance data: a six-node network, seven physical links, three service links
# --------------------------------------------------------------------------------------------


def test_yang_nbi_paper_network_with_service_links_validates(ctx):
    printed = parse(ctx, network())
    net = printed[f"{TOPO}:qkd_network"]
    assert len(net["sdqkd_nodes"]["sdqkd_node"]) == 6
    assert len(net["qkd_links"]["phys_links"]["phys_link"]) == 7
    services = net["qkd_links"]["svc_links"]["svc_link"]
    assert len(services) == 3
    relayed = services[1]["paths"]["path"][0]["hop"]
    assert [hop["qkdn_id"] for hop in relayed] == [node_id(2), node_id(0), node_id(3)]


def test_yang_nbi_configuration_alone_validates_and_fills_defaults(ctx):
    printed = parse(ctx, network(with_state=False), config_only=True)
    profiles = printed[f"{ACC}:qkd_access"]["sla_profiles"]["sla_profile"]
    standard = next(profile for profile in profiles if profile["name"] == "standard")
    assert standard["path_restoration"] == {
        "restoration_type": f"{ACC}:AUTOMATIC",
        "hold_off_time": 0,
    }
    assert standard["allow_lower_rate"] is True and standard["fallback"] == "qkd-only"
    user = printed[f"{ACC}:qkd_access"]["users"]["user"][0]
    assert user["revoked"] is False
    link = printed[f"{TOPO}:qkd_network"]["qkd_links"]["phys_links"]["phys_link"][0]
    assert link[f"{INV}:phys_link_details"]["qkdl_enable"] is True


def test_yang_nbi_service_links_are_state_data(ctx):
    """An orchestrator cannot create a service link by edit-config: it is config false."""
    with pytest.raises(libyang.LibyangError):
        parse(ctx, network(with_state=True), config_only=True)
    node = ctx.find_path(f"/{TOPO}:qkd_network/qkd_links/svc_links")
    assert next(node).config_false()


def test_yang_nbi_revoking_a_user_is_a_config_change(ctx):
    data = network(with_state=False)
    user = data[f"{ACC}:qkd_access"]["users"]["user"][2]
    user.update({"revoked": True, "revoked_reason": "contract ended"})
    printed = parse(ctx, data, config_only=True)
    assert printed[f"{ACC}:qkd_access"]["users"]["user"][2]["revoked"] is True


def test_yang_nbi_user_may_be_restricted_to_peers(ctx):
    data = network(with_state=False)
    users = data[f"{ACC}:qkd_access"]["users"]["user"]
    users[0]["allowed_peer"] = ["user-1"]
    users[1]["allowed_peer"] = ["*"]
    parse(ctx, data, config_only=True)
    users[0]["allowed_peer"] = ["nobody"]
    with pytest.raises(libyang.LibyangError):
        parse(ctx, data, config_only=True)


def test_yang_nbi_multipath_service_link_validates(ctx):
    data = network()
    service = data[f"{TOPO}:qkd_network"]["qkd_links"]["svc_links"]["svc_link"][2]
    service["paths"]["path"].append(path(((4, 3), (0, 4), (5, None)), index=1))
    parse(ctx, data)


def mutated(change) -> dict:
    data = copy.deepcopy(network())
    change(data)
    return data


def _net(data):
    return data[f"{TOPO}:qkd_network"]


def _acc(data):
    return data[f"{ACC}:qkd_access"]


INVALID = {
    "application-on-unknown-node": lambda d: _acc(d)["applications"]["application"][0].update(
        qkdn_id=node_id(9)
    ),
    "application-of-unknown-user": lambda d: _acc(d)["applications"]["application"][0].update(
        user="mallory"
    ),
    "user-with-unknown-sla": lambda d: _acc(d)["users"]["user"][0].update(sla_profile="gold"),
    "user-without-sla": lambda d: _acc(d)["users"]["user"][0].pop("sla_profile"),
    "sla-min-above-max": lambda d: _acc(d)["sla_profiles"]["sla_profile"][0].update(
        min_bandwidth=2000000
    ),
    "sla-zero-rate": lambda d: _acc(d)["sla_profiles"]["sla_profile"][0].update(max_bandwidth=0),
    "sla-zero-idle-timeout": lambda d: _acc(d)["sla_profiles"]["sla_profile"][0].update(
        idle_timeout=0
    ),
    "sla-restoration-not-a-policy": lambda d: _acc(d)["sla_profiles"]["sla_profile"][0].update(
        path_restoration={"restoration_type": f"{TYPES}:ACTIVE"}
    ),
    "sae-id-with-space": lambda d: _acc(d)["applications"]["application"][0].update(
        sae_id="sae 0"
    ),
    "link-loop": lambda d: _net(d)["qkd_links"]["phys_links"]["phys_link"][0]["qkdl_remote"].update(
        qkdn_id=node_id(0), qkdi_id=2
    ),
    "link-on-foreign-interface": lambda d: _net(d)["qkd_links"]["phys_links"]["phys_link"][0][
        "qkdl_local"
    ].update(qkdi_id=7),
    "link-to-unknown-node": lambda d: _net(d)["qkd_links"]["phys_links"]["phys_link"][0][
        "qkdl_remote"
    ].update(qkdn_id=node_id(8), qkdi_id=None),
    "link-without-end": lambda d: _net(d)["qkd_links"]["phys_links"]["phys_link"][0].pop(
        "qkdl_remote"
    ),
    "node-id-not-uuid": lambda d: _net(d)["sdqkd_nodes"]["sdqkd_node"][0].update(qkdn_id="node-0"),
    "node-status-not-a-node-status": lambda d: _net(d)["sdqkd_nodes"]["sdqkd_node"][0].update(
        qkdn_status=f"{TYPES}:ACTIVE"
    ),
    "service-to-unknown-node": lambda d: _net(d)["qkd_links"]["svc_links"]["svc_link"][0][
        "qkdl_remote"
    ].update(qkdn_id=node_id(7)),
    "service-without-end": lambda d: _net(d)["qkd_links"]["svc_links"]["svc_link"][0].pop(
        "qkdl_local"
    ),
    "service-unknown-state": lambda d: _net(d)["qkd_links"]["svc_links"]["svc_link"][0][
        f"{INV}:svc_link_details"
    ].update(session_state="running"),
    "hop-without-node": lambda d: _net(d)["qkd_links"]["svc_links"]["svc_link"][0]["paths"][
        "path"
    ][0]["hop"][0].pop("qkdn_id"),
    "qber-not-a-number": lambda d: _net(d)["qkd_links"]["phys_links"]["phys_link"][0][
        f"{INV}:phys_link_details"
    ]["qkdl_performance"]["phys_perf"][0].update(value="high"),
}


#: What libyang must say for each invalid change (so a test fails for its own reason only).
INVALID_BECAUSE = {
    "application-on-unknown-node": "no target instance",
    "application-of-unknown-user": "no target instance",
    "user-with-unknown-sla": "no target instance",
    "user-without-sla": 'Mandatory node "sla_profile"',
    "sla-min-above-max": "min_bandwidth is above max_bandwidth",
    "sla-zero-rate": "out of the allowed range",
    "sla-zero-idle-timeout": "out of the allowed range",
    "sla-restoration-not-a-policy": "PATH-RESTORATION-TYPES",
    "sae-id-with-space": "Unsatisfied pattern",
    "link-loop": "a physical link joins two different nodes",
    "link-on-foreign-interface": 'Invalid leafref value "7"',
    "link-to-unknown-node": 'Invalid leafref value "00000008-',
    "link-without-end": 'Mandatory node "qkdn_id"',
    "node-id-not-uuid": "Unsatisfied pattern",
    "node-status-not-a-node-status": "QKDN-STATUS-TYPES",
    "service-to-unknown-node": 'Invalid leafref value "00000007-',
    "service-without-end": 'Mandatory node "qkdn_id"',
    "service-unknown-state": 'Invalid enumeration value "running"',
    "hop-without-node": 'Mandatory node "qkdn_id"',
    "qber-not-a-number": "decimal64",
}


def _drop_none(value):
    """JSON without the keys a mutation set to None (a way to delete a leaf in a lambda)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_yang_nbi_rejects_invalid_data(ctx, case):
    with pytest.raises(libyang.LibyangError, match=re.escape(INVALID_BECAUSE[case])):
        parse(ctx, _drop_none(mutated(INVALID[case])))


def test_yang_nbi_referenced_sla_cannot_be_deleted(ctx):
    """Deleting an SLA profile that users still have is refused (leafref integrity)."""
    data = network(with_state=False)
    _acc(data)["sla_profiles"]["sla_profile"].pop(0)
    with pytest.raises(libyang.LibyangError, match="standard"):
        parse(ctx, data, config_only=True)


# --------------------------------------------------------------------------------------------
# RPCs and notifications
# --------------------------------------------------------------------------------------------


def test_yang_nbi_close_and_restore_rpcs_validate(ctx):
    parse_operation(
        ctx,
        {f"{INV}:close_svc_link": {"qkdl_id": svc_id(1), "reason": "operator request"}},
        libyang.DataType.RPC_YANG,
    )
    parse_operation(ctx, {f"{INV}:restore_svc_link": {"qkdl_id": svc_id(1)}},
                    libyang.DataType.RPC_YANG)
    parse_operation(
        ctx,
        {f"{INV}:restore_svc_link": {"paths": {"path": [path(((2, 6), (1, 0), (0, 2), (3, None)))]}}},
        libyang.DataType.REPLY_YANG,
    )


@pytest.mark.parametrize(
    "body",
    [
        {f"{INV}:close_svc_link": {"reason": "no id"}},
        {f"{INV}:close_svc_link": {"qkdl_id": "not-a-uuid"}},
        {f"{INV}:restore_svc_link": {}},
    ],
    ids=["close-without-id", "close-bad-id", "restore-without-id"],
)
def test_yang_nbi_rpcs_reject_bad_input(ctx, body):
    with pytest.raises(libyang.LibyangError):
        parse_operation(ctx, body, libyang.DataType.RPC_YANG)


NOTIFICATIONS = {
    "new-node": {f"{INV}:qkdn_resource_new": {"sdqkd_node": {"qkdn_id": node_id(3), "qkdn_name": "3"}}},
    "new-interface": {
        f"{INV}:qkdn_resource_new": {"qkd_interface": {"qkdn_id": node_id(3), "qkdi_id": 3}}
    },
    "new-phys-link": {f"{INV}:qkdn_resource_new": {"phys_link": {"qkdl_id": link_id(6)}}},
    "new-svc-link": {f"{INV}:qkdn_resource_new": {"svc_link": {"qkdl_id": svc_id(1)}}},
    "svc-link-removed": {
        f"{INV}:qkdn_resource_removed": {"svc_link": {"qkdl_id": svc_id(1)}, "reason": "idle-timeout"}
    },
    "phys-perf-update": {
        f"{INV}:phys_link_perf_update": {
            "qkdl_id": link_id(2),
            "qkdl_status": f"{TYPES}:ACTIVE",
            "qkdl_performance": {
                "skr": 90000,
                "eskr": 85000,
                "expected_consumption": 8192,
                "phys_perf": [{"perf_type": f"{TYPES}:QBER", "value": "0.034"}],
                "key_store": {"stored_key_bits": "65536", "capacity_bits": "8388608"},
            },
        }
    },
    "svc-perf-update": {
        f"{INV}:svc_link_perf_update": {
            "qkdl_id": svc_id(1),
            "qkdl_status": f"{TYPES}:ACTIVE",
            "session_state": "active",
            "qkdl_performance": {
                "skr": 90000,
                "eskr": 85000,
                "phys_perf": [{"perf_type": f"{TYPES}:QBER", "value": "0.034"}],
                "key_store": {"stored_key_bits": "65536"},
                "keys_delivered": "10",
                "bits_delivered": "2560",
            },
        }
    },
    "svc-path-update": {
        f"{INV}:svc_link_path_update": {
            "qkdl_id": svc_id(1),
            "reason": "link-failure",
            "bandwidth": 8192,
            "paths": {"path": [path(((2, 6), (1, 0), (0, 2), (3, None)))]},
        }
    },
    "phys-overloaded": {
        f"{INV}:phys_link_overloaded": {
            "qkdl_id": link_id(0),
            "qkdl_performance": {"expected_consumption": 200000, "skr": 120000, "eskr": 110000},
            "svc_link": [svc_id(0), svc_id(1)],
        }
    },
    "alarm-qber": {
        f"{INV}:alarm": {
            "alarm_type": f"{INV}:QBER-HIGH",
            "severity": f"{TYPES}:MAJOR",
            "phys_link": {"qkdl_id": link_id(2)},
            "qkdl_status": f"{TYPES}:ACTIVE",
            "message": "QBER 0.16 above 0.11: possible eavesdropping",
            "affected_svc_link": [svc_id(1)],
        }
    },
    "alarm-cleared": {
        f"{INV}:alarm": {
            "alarm_type": f"{INV}:QBER-HIGH",
            "severity": f"{TYPES}:MINOR",
            "cleared": True,
            "phys_link": {"qkdl_id": link_id(2)},
        }
    },
    "alarm-node": {
        f"{INV}:alarm": {
            "alarm_type": f"{INV}:NODE-UNREACHABLE",
            "severity": f"{TYPES}:MAJOR",
            "sdqkd_node": {"qkdn_id": node_id(5)},
        }
    },
}


@pytest.mark.parametrize("body", list(NOTIFICATIONS.values()), ids=list(NOTIFICATIONS))
def test_yang_nbi_notifications_validate(ctx, body):
    notify(ctx, body)


BAD_NOTIFICATIONS = {
    "resource-new-without-resource": {f"{INV}:qkdn_resource_new": {}},
    "resource-with-two-kinds": {
        f"{INV}:qkdn_resource_new": {
            "phys_link": {"qkdl_id": link_id(1)},
            "svc_link": {"qkdl_id": svc_id(1)},
        }
    },
    "perf-update-without-link": {f"{INV}:phys_link_perf_update": {"qkdl_status": f"{TYPES}:OFF"}},
    "alarm-without-type": {
        f"{INV}:alarm": {"severity": f"{TYPES}:MAJOR", "phys_link": {"qkdl_id": link_id(1)}}
    },
    "alarm-without-severity": {
        f"{INV}:alarm": {"alarm_type": f"{INV}:LINK-DOWN", "phys_link": {"qkdl_id": link_id(1)}}
    },
    "alarm-type-from-wrong-base": {
        f"{INV}:alarm": {
            "alarm_type": f"{TYPES}:MAJOR",
            "severity": f"{TYPES}:MAJOR",
            "phys_link": {"qkdl_id": link_id(1)},
        }
    },
    "alarm-without-resource": {
        f"{INV}:alarm": {"alarm_type": f"{INV}:LINK-DOWN", "severity": f"{TYPES}:MAJOR"}
    },
    "svc-perf-bad-state": {
        f"{INV}:svc_link_perf_update": {"qkdl_id": svc_id(1), "session_state": "operative"}
    },
}


@pytest.mark.parametrize("body", list(BAD_NOTIFICATIONS.values()), ids=list(BAD_NOTIFICATIONS))
def test_yang_nbi_notifications_reject_invalid_bodies(ctx, body):
    with pytest.raises(libyang.LibyangError):
        notify(ctx, body)


# --------------------------------------------------------------------------------------------
# documentation in step
# --------------------------------------------------------------------------------------------


def test_yang_nbi_readme_documents_the_modules(yang_dir):
    readme = (yang_dir / "README.md").read_text()
    for module in NBI_MODULES:
        assert f"`{module}.yang`" in readme and f"`{module}.tree`" in readme, module
    assert "ETSI GS QKD 018" in readme


# --------------------------------------------------------------------------------------------
# the example payloads of docs/controller-nbi.md are valid
# --------------------------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "controller-nbi.md"
NC_BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
NC_NOTIFICATION = "urn:ietf:params:xml:ns:netconf:notification:1.0"


def doc_examples() -> list:
    from lxml import etree

    blocks = re.findall(r"```xml\n(.*?)```", DOC.read_text(), re.DOTALL)
    return [etree.fromstring(block.encode()) for block in blocks]


def merged_with_network(ctx, fragments, *, with_state: bool, config_only: bool) -> None:
    """Merge XML data fragments into the sample network and validate the result."""
    from lxml import etree

    tree = ctx.parse_data_mem(
        json.dumps(network(with_state=with_state)), "json", strict=True, parse_only=True
    )
    try:
        for fragment in fragments:
            for child in fragment:
                part = ctx.parse_data_mem(
                    etree.tostring(child).decode(), "xml", strict=True, parse_only=True
                )
                tree.merge(part, with_siblings=True, destruct=True)
                tree = tree.first_sibling()
            tree.validate(no_state=config_only, validate_present=True)
    finally:
        tree.free()


def test_yang_nbi_doc_examples_are_all_checked():
    roots = [etree_name(element) for element in doc_examples()]
    assert roots.count("config") >= 3 and roots.count("notification") >= 2
    assert "rpc-reply" in roots and "rpc" in roots


def etree_name(element) -> str:
    from lxml import etree

    return etree.QName(element).localname


def test_yang_nbi_doc_config_examples_validate_in_order(ctx):
    configs = [e for e in doc_examples() if etree_name(e) == "config"]
    merged_with_network(ctx, configs, with_state=False, config_only=True)


def test_yang_nbi_doc_get_reply_validates(ctx):
    replies = [e for e in doc_examples() if etree_name(e) == "rpc-reply"]
    data = [r.find(f"{{{NC_BASE}}}data") for r in replies if r.find(f"{{{NC_BASE}}}data") is not None]
    assert data
    merged_with_network(ctx, data, with_state=True, config_only=False)
    errors = [r for r in replies if r.find(f"{{{NC_BASE}}}rpc-error") is not None]
    assert errors and errors[0].findtext(f"{{{NC_BASE}}}rpc-error/{{{NC_BASE}}}error-app-tag") == (
        "unknown-svc-link"
    )


def test_yang_nbi_doc_rpcs_and_notifications_validate(ctx):
    from lxml import etree

    checked = 0
    for element in doc_examples():
        if etree_name(element) == "rpc":
            operation = element[0]
            if etree.QName(operation).namespace == NC_BASE:
                continue  # <get>: a protocol operation, not part of our modules
            dtype = libyang.DataType.RPC_YANG
        elif etree_name(element) == "notification":
            operation = next(c for c in element if etree.QName(c).namespace != NC_NOTIFICATION)
            dtype = libyang.DataType.NOTIF_YANG
        else:
            continue
        parsed = ctx.parse_op_mem("xml", etree.tostring(operation).decode(), dtype)
        try:
            parsed.validate_op(dtype)
        finally:
            parsed.free()
        checked += 1
    assert checked >= 3


def test_yang_nbi_readme_maps_every_rpc_and_notification(ctx, yang_dir):
    """The correspondence table names every operation and notification of ours."""
    readme = (yang_dir / "README.md").read_text()
    section = readme[readme.index("## Controller north-bound modules"):]
    for top in ctx.get_module(INV).children():
        if top.keyword() in ("rpc", "notification"):
            # `name` or `prefix:name`
            assert re.search(rf"`([\w-]+:)?{top.name()}`", section), top.name()


def test_yang_nbi_agent_advertises_the_modules_and_refuses_their_rpcs():
    """What docs/controller-nbi.md promises about agents, which load every module of yang/."""
    from lxml import etree

    from qkd_agent.capabilities import collect_schema_modules, server_capabilities
    from qkd_agent.operations import find_operation
    from qkd_agent.rpc_error import RpcError
    from qkd_agent.yang_context import load_context

    context = load_context()
    try:
        capabilities = server_capabilities(collect_schema_modules(context))
    finally:
        context.destroy()
    for namespace, module in (
        (namespaces.QKDN_TOPO_NS, TOPO),
        (namespaces.QKDN_INV_NS, INV),
        (namespaces.QKDN_ACC_NS, ACC),
    ):
        assert f"{namespace}?module={module}&revision=2026-11-27" in capabilities
    rpc = etree.fromstring(
        f'<close_svc_link xmlns="{namespaces.QKDN_INV_NS}"><qkdl_id>{svc_id(1)}</qkdl_id>'
        "</close_svc_link>"
    )
    with pytest.raises(RpcError) as refused:
        find_operation(rpc)
    assert refused.value.tag.value == "operation-not-supported"
