"""The project's YANG modules: clean under pyang --strict, loadable by libyang, trees committed.

Also checks the qkdn-key-manager extension: it augments the ETSI 015 tree in the places the
key manager and the controller need, its constraints bite, and its notifications validate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import libyang
import pytest

from qkdn import namespaces

ETSI_MODULES = (namespaces.ETSI_TYPES_MODULE, namespaces.ETSI_NODE_MODULE)
ALL_MODULES = (*ETSI_MODULES, namespaces.QKDN_KM_MODULE)
#: Every module file in yang/ (modules added later are checked too).
MODULE_FILES = sorted(path.stem for path in namespaces.YANG_DIR.glob("*.yang"))

#: Committed `pyang -f tree` renderings, one per module that has data nodes.
TREE_FILES = {
    namespaces.ETSI_NODE_MODULE: "etsi-qkd-sdn-node.tree",
    namespaces.QKDN_KM_MODULE: "qkdn-key-manager.tree",
}

NODE_ID = "11111111-1111-4111-8111-111111111111"
APP_ID = "aaaaaaaa-1111-4111-8111-111111111111"
PHYS_LINK_ID = "bbbbbbbb-1111-4111-8111-111111111111"
VIRT_LINK_ID = "cccccccc-1111-4111-8111-111111111111"
PREV_NODE_ID = "dddddddd-1111-4111-8111-111111111111"
NEXT_NODE_ID = "eeeeeeee-1111-4111-8111-111111111111"
TYPES = namespaces.ETSI_TYPES_MODULE
NODE = namespaces.ETSI_NODE_MODULE
KM = namespaces.QKDN_KM_MODULE


@pytest.fixture(scope="module")
def ctx(yang_dir: Path):
    """A libyang context with every module of yang/ implemented."""
    context = libyang.Context(str(yang_dir))
    for name in MODULE_FILES:
        context.load_module(name)
    yield context
    context.destroy()


def parse(ctx: libyang.Context, data: dict) -> None:
    """Parse and fully validate RFC 7951 JSON data (config and state); free the tree."""
    tree = ctx.parse_data_mem(json.dumps(data), "json", strict=True, validate_present=True)
    if tree is not None:
        tree.free()


def parse_notification(ctx: libyang.Context, body: dict) -> None:
    """Parse and validate an RFC 7951 JSON notification body."""
    notification = ctx.parse_op_mem("json", json.dumps(body), libyang.DataType.NOTIF_YANG)
    try:
        notification.validate_op(libyang.DataType.NOTIF_YANG)
    finally:
        notification.free()


def node_with_session(**km_session) -> dict:
    """A qkd_node whose one application carries the given km_session settings."""
    return {
        f"{NODE}:qkd_node": {
            "qkdn_id": NODE_ID,
            f"{KM}:key_manager": {"key_store_capacity": "1048576"},
            "qkd_applications": {
                "qkd_app": [
                    {
                        "app_id": APP_ID,
                        "app_type": f"{TYPES}:CLIENT",
                        "server_app_id": "sae://alice",
                        "client_app_id": ["sae://bob"],
                        "app_qos": {"max_bandwidth": 8192, "ttl": 60},
                        "backing_qkdl_id": [VIRT_LINK_ID],
                        f"{KM}:km_session": km_session,
                    }
                ]
            },
            "qkd_links": {
                "qkd_link": [
                    {
                        "qkdl_id": PHYS_LINK_ID,
                        "qkdl_type": f"{TYPES}:PHYS",
                        "qkdl_performance": {
                            "skr": 12000,
                            f"{KM}:key_store": {
                                "stored_key_bits": "4096",
                                "capacity_bits": "1048576",
                                "consumed_key_bits": "65536",
                            },
                        },
                    },
                    {
                        "qkdl_id": VIRT_LINK_ID,
                        "qkdl_type": f"{TYPES}:VIRT",
                        "virt_prev_hop": PREV_NODE_ID,
                        "virt_next_hop": [NEXT_NODE_ID],
                        "virt_bandwidth": 4096,
                    },
                ]
            },
        }
    }


# --------------------------------------------------------------------------------------------
# pyang and libyang accept every module
# --------------------------------------------------------------------------------------------


def test_yang_folder_holds_the_expected_modules():
    assert set(ALL_MODULES) <= set(MODULE_FILES)


@pytest.mark.parametrize("module", MODULE_FILES)
def test_yang_module_is_clean_under_pyang_strict(module, yang_dir, run_pyang):
    result = run_pyang("--strict", str(yang_dir / f"{module}.yang"), path=(yang_dir,))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == "", (
        f"pyang --strict reported on {module}:\n{result.stderr}{result.stdout}"
    )


def test_yang_all_modules_together_are_clean_under_pyang_strict(yang_dir, run_pyang):
    files = [str(yang_dir / f"{name}.yang") for name in MODULE_FILES]
    result = run_pyang("--strict", *files, path=(yang_dir,))
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_yang_libyang_implements_every_module(ctx):
    for name in MODULE_FILES:
        module = ctx.get_module(name)
        assert module.implemented(), f"{name} is only imported"


def test_yang_module_files_match_namespaces_constants(ctx):
    expected = {
        namespaces.ETSI_NODE_MODULE: (
            namespaces.ETSI_NODE_NS,
            namespaces.ETSI_NODE_PREFIX,
            namespaces.ETSI_NODE_REVISION,
        ),
        namespaces.ETSI_TYPES_MODULE: (
            namespaces.ETSI_TYPES_NS,
            namespaces.ETSI_TYPES_PREFIX,
            namespaces.ETSI_TYPES_REVISION,
        ),
        namespaces.QKDN_KM_MODULE: (
            namespaces.QKDN_KM_NS,
            namespaces.QKDN_KM_PREFIX,
            namespaces.QKDN_KM_REVISION,
        ),
    }
    for name, (namespace, prefix, revision) in expected.items():
        module = ctx.get_module(name)
        yang_text = module.print_mem("yang")
        assert f'namespace "{namespace}";' in yang_text
        assert module.prefix() == prefix
        assert next(module.revisions()).date() == revision, f"{name}: newest revision"


def test_yang_every_yang_file_is_named_after_its_module(yang_dir):
    for path in yang_dir.glob("*.yang"):
        first = re.search(r"^module\s+([\w.-]+)\s*\{", path.read_text(), re.MULTILINE)
        assert first and first.group(1) == path.stem, path.name


# --------------------------------------------------------------------------------------------
# committed tree renderings
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(TREE_FILES))
def test_yang_committed_tree_matches_pyang(module, yang_dir, run_pyang):
    result = run_pyang("-f", "tree", str(yang_dir / f"{module}.yang"), path=(yang_dir,))
    assert result.returncode == 0, result.stderr
    committed = (yang_dir / TREE_FILES[module]).read_text()
    assert result.stdout == committed, (
        f"yang/{TREE_FILES[module]} is stale; regenerate it as yang/README.md explains"
    )


# --------------------------------------------------------------------------------------------
# qkdn-key-manager: where it attaches and what it constrains
# --------------------------------------------------------------------------------------------


def test_yang_key_manager_adds_no_top_level_data(ctx):
    module = ctx.get_module(KM)
    top = [(node.keyword(), node.name()) for node in module.children()]
    assert top == [
        ("notification", "km_session_state_change"),
        ("notification", "km_key_request"),
        ("notification", "km_key_mode_change"),
    ]


def test_yang_key_manager_augments_the_etsi_tree_where_needed(ctx):
    expected = {
        f"/{NODE}:qkd_node/{KM}:key_manager/key_store_capacity": False,
        f"/{NODE}:qkd_node/qkd_applications/qkd_app/{KM}:km_session/token_bucket/bucket_size": False,
        f"/{NODE}:qkd_node/qkd_applications/qkd_app/{KM}:km_session/token_bucket/token_rate": False,
        f"/{NODE}:qkd_node/qkd_applications/qkd_app/{KM}:km_session/idle_timeout": False,
        f"/{NODE}:qkd_node/qkd_applications/qkd_app/{KM}:km_session/role": False,
        f"/{NODE}:qkd_node/qkd_applications/qkd_app/{KM}:km_session/state": True,
        f"/{NODE}:qkd_node/qkd_applications/qkd_app/{KM}:km_session/counters/keys_delivered": True,
        f"/{NODE}:qkd_node/qkd_applications/qkd_app/{KM}:km_session/counters/bits_delivered": True,
        f"/{NODE}:qkd_node/qkd_applications/qkd_app/{KM}:km_session/counters/key_requests": True,
        f"/{NODE}:qkd_node/qkd_links/qkd_link/qkdl_performance/{KM}:key_store/stored_key_bits": True,
        f"/{NODE}:qkd_node/qkd_links/qkd_link/qkdl_performance/{KM}:key_store/capacity_bits": True,
        f"/{NODE}:qkd_node/qkd_links/qkd_link/qkdl_performance/{KM}:key_store/consumed_key_bits": True,
        f"/{NODE}:qkd_node/{KM}:km_refusals/refusal/etsi004_status": False,
        f"/{NODE}:qkd_node/{KM}:km_refusals/refusal/counter_proposal/max_bps": False,
    }
    for path, state in expected.items():
        nodes = list(ctx.find_path(path))
        assert len(nodes) == 1, path
        assert nodes[0].config_false() is state, path


def test_yang_key_manager_reuses_etsi_leaves_instead_of_repeating_them(ctx):
    """SAE ids, QoS, ttl and path neighbours stay in 015; our module has no second copy."""
    km_names = set()
    for top in ctx.find_path(f"/{NODE}:qkd_node"):
        for node in top.iter_tree():
            if node.module().name() == KM:
                km_names.add(node.name())
    repeated = km_names & {
        "server_app_id",
        "client_app_id",
        "max_bandwidth",
        "min_bandwidth",
        "ttl",
        "app_priority",
        "virt_prev_hop",
        "virt_next_hop",
    }
    assert not repeated


def test_yang_key_manager_session_config_and_state_validate(ctx):
    session = {
        "role": "relay",
        "token_bucket": {"bucket_size": 16384, "token_rate": 8192},
        "idle_timeout": 30,
        "key_chunk_size": 32,
        "state": "key-exchanging",
        "state_changed": "2026-11-27T03:00:00Z",
        "counters": {"key_requests": "3", "keys_delivered": "2", "bits_delivered": "512"},
    }
    parse(ctx, node_with_session(**session))


@pytest.mark.parametrize(
    "bad_session",
    [
        {"role": "sink"},
        {"state": "user_accepted"},
        {"token_bucket": {"token_rate": 0}},
        {"token_bucket": {"bucket_size": -1}},
        {"idle_timeout": 0},
    ],
    ids=["unknown-role", "unknown-state", "zero-rate", "negative-bucket", "zero-timeout"],
)
def test_yang_key_manager_rejects_invalid_session_values(ctx, bad_session):
    with pytest.raises(libyang.LibyangError):
        parse(ctx, node_with_session(**bad_session))


def test_yang_key_manager_key_store_only_on_physical_links(ctx):
    data = node_with_session(role="source")
    virt_link = data[f"{NODE}:qkd_node"]["qkd_links"]["qkd_link"][1]
    virt_link["qkdl_performance"] = {f"{KM}:key_store": {"stored_key_bits": "1"}}
    with pytest.raises(libyang.LibyangError, match="When condition"):
        parse(ctx, data)


def test_yang_key_manager_node_capacity_has_a_default(ctx):
    data = node_with_session(role="destination")
    del data[f"{NODE}:qkd_node"][f"{KM}:key_manager"]
    tree = ctx.parse_data_mem(json.dumps(data), "json", strict=True, validate_present=True)
    try:
        printed = tree.print_dict(include_implicit_defaults=True)
    finally:
        tree.free()
    assert printed["qkd_node"]["key_manager"]["key_store_capacity"] == 8388608


def test_yang_key_manager_extends_application_new_notification(ctx):
    parse_notification(
        ctx,
        {
            f"{NODE}:sdqkdn_application_new": {
                "qkd_application": {
                    "app_type": f"{TYPES}:CLIENT",
                    "server_app_id": "sae://alice",
                    "client_app_id": ["sae://bob"],
                    "app_priority": 2,
                    "local_qkdn_id": NODE_ID,
                    "app_qos": {
                        "max_bandwidth": 8192,
                        "min_bandwidth": 1024,
                        "jitter": 5,
                        "ttl": 60,
                    },
                    f"{KM}:km_request": {
                        "authenticated_sae_id": "alice",
                        "certificate_sha256": ":".join(["ab"] * 32),
                        "application_interface": "etsi-004",
                        "key_stream_id": APP_ID,
                        "etsi004_qos": {
                            "key_chunk_size": 32,
                            "timeout": 1000,
                            "metadata_mimetype": "application/json",
                        },
                    },
                }
            }
        },
    )


def test_yang_key_manager_rejects_malformed_certificate_fingerprint(ctx):
    body = {
        f"{NODE}:sdqkdn_application_new": {
            "qkd_application": {f"{KM}:km_request": {"certificate_sha256": "ab:cd"}}
        }
    }
    with pytest.raises(libyang.LibyangError):
        parse_notification(ctx, body)


def test_yang_key_manager_notifications_validate(ctx):
    parse_notification(
        ctx,
        {
            f"{KM}:km_session_state_change": {
                "app_id": APP_ID,
                "state": "terminated",
                "reason": "idle timeout",
            }
        },
    )
    parse_notification(
        ctx,
        {
            f"{KM}:km_key_request": {
                "app_id": APP_ID,
                "number_of_keys": 4,
                "bits": "1024",
                "outcome": "rate-limited",
            }
        },
    )


def test_yang_key_manager_hybrid_policy_and_provenance_validate(ctx):
    parse(ctx, node_with_session(
        fallback_policy="hybrid", key_mode="pqc",
        counters={"key_requests": "3", "provenance": {
            "qkd_keys": "1", "qkd_bits": "256", "hybrid_keys": "2", "hybrid_bits": "512",
            "pqc_keys": "0", "pqc_bits": "0"}}))
    parse_notification(ctx, {f"{KM}:km_key_request": {
        "app_id": APP_ID, "number_of_keys": 2, "bits": "512", "outcome": "delivered",
        "delivered": {"qkd_keys": "1", "qkd_bits": "256", "hybrid_keys": "1",
                      "hybrid_bits": "256"}}})
    parse_notification(ctx, {f"{KM}:km_key_mode_change": {
        "app_id": APP_ID, "mode": "hybrid", "previous_mode": "qkd", "reason": "link down"}})
    with pytest.raises(libyang.LibyangError):
        parse(ctx, node_with_session(fallback_policy="pqc-only"))
    with pytest.raises(libyang.LibyangError):
        parse_notification(ctx, {f"{KM}:km_key_mode_change": {"app_id": APP_ID,
                                                               "mode": "quantum"}})


def test_yang_key_manager_notifications_require_session_and_outcome(ctx):
    with pytest.raises(libyang.LibyangError):
        parse_notification(ctx, {f"{KM}:km_key_request": {"app_id": APP_ID, "number_of_keys": 1}})
    with pytest.raises(libyang.LibyangError):
        parse_notification(ctx, {f"{KM}:km_session_state_change": {"state": "operative"}})


def test_yang_readme_shows_the_current_key_manager_tree(yang_dir):
    tree = (yang_dir / TREE_FILES[KM]).read_text().strip()
    assert tree in (yang_dir / "README.md").read_text(), "update the tree in yang/README.md"


def test_yang_key_manager_refusal_validates_and_its_status_is_004s(ctx):
    entry = {"request_id": APP_ID, "sae_id": "alice", "peer_sae_id": "bob", "app_id": APP_ID,
             "etsi004_status": 7, "access_denied": False, "reason": "qos-above-sla",
             "refused_at": "2026-11-27T06:00:00.000Z",
             "counter_proposal": {"max_bps": 1000, "min_bps": 500, "priority": 3}}
    data = {f"{NODE}:qkd_node": {"qkdn_id": NODE_ID,
                                 f"{KM}:km_refusals": {"refusal": [entry]}}}
    parse(ctx, data)
    entry["etsi004_status"] = 0  # success is no refusal
    with pytest.raises(libyang.LibyangError):
        parse(ctx, data)
