"""Our ETSI GS QKD 015 modules have exactly the schema of the standard's own modules.

Reference: the official V2.1.1 files with the `when` defect corrected (the "validation" copy in
../shared/reference/etsi-yang/validation/). Compared through libyang's schema API node by node
(names, kinds, config, keys, defaults, mandatory, types with ranges, patterns, fraction digits
and identity bases, `when`), through libyang's compiled-schema printout with documentation
stripped, identity by identity, and through pyang's tree. Instance data must validate the same
under both. The only expected difference is yang-version (1.1 here; see yang/README.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import libyang
import pytest
from _libyang import ffi, lib
from libyang.util import c2str, ly_array_count
from lxml import etree

from qkdn import namespaces

NODE = namespaces.ETSI_NODE_MODULE
TYPES = namespaces.ETSI_TYPES_MODULE
YIN_NS = "urn:ietf:params:xml:ns:yang:yin:1"
DOCUMENTATION = ("description", "reference", "contact", "organization")

NODE_ID = "11111111-1111-4111-8111-111111111111"
APP_ID = "aaaaaaaa-1111-4111-8111-111111111111"
PHYS_LINK_ID = "bbbbbbbb-1111-4111-8111-111111111111"
VIRT_LINK_ID = "cccccccc-1111-4111-8111-111111111111"


def load_etsi_context(folder: Path) -> libyang.Context:
    """A libyang context with the two ETSI modules of ``folder`` implemented (nothing else)."""
    context = libyang.Context(str(folder))
    context.load_module(TYPES)
    context.load_module(NODE)
    for name in (TYPES, NODE):
        module = context.get_module(name)
        assert module.filepath() and Path(module.filepath()).parent == folder.resolve()
    return context


@pytest.fixture(scope="module")
def ours(yang_dir: Path):
    context = load_etsi_context(yang_dir)
    yield context
    context.destroy()


@pytest.fixture(scope="module")
def reference(etsi_reference_dir: Path):
    context = load_etsi_context(etsi_reference_dir)
    yield context
    context.destroy()


@pytest.fixture(scope="module")
def official(etsi_official_dir: Path):
    context = load_etsi_context(etsi_official_dir)
    yield context
    context.destroy()


# --------------------------------------------------------------------------------------------
# schema descriptions
# --------------------------------------------------------------------------------------------


def compiled_schema_text(module: libyang.Module) -> str:
    """libyang's printout of the compiled module (typedefs and groupings resolved)."""
    out = ffi.new("struct ly_out **")
    buffer = ffi.new("char **")
    assert lib.ly_out_new_memory(buffer, 0, out) == lib.LY_SUCCESS
    try:
        ret = lib.lys_print_module(out[0], module.cdata, lib.LYS_OUT_YANG_COMPILED, 0, 0)
        assert ret == lib.LY_SUCCESS, f"cannot print compiled {module.name()}"
        return c2str(buffer[0])
    finally:
        lib.ly_out_free(out[0], ffi.NULL, True)


def without_documentation(yang_text: str) -> str:
    """Drop description/reference/contact/organization statements (their text is ours)."""
    keywords = "|".join(DOCUMENTATION)
    pattern = rf'^[ \t]*(?:{keywords})\s+"(?:[^"\\]|\\.)*";\n'
    return re.sub(pattern, "", yang_text, flags=re.MULTILINE)


def type_facts(leaf_type: libyang.Type) -> dict:
    typedef = leaf_type.typedef()
    facts = {
        "name": leaf_type.name(),
        "base": leaf_type.basename(),
        "typedef": typedef.name() if typedef else None,
        "ranges": list(leaf_type.all_ranges()),
        "lengths": list(leaf_type.all_lengths()),
        "patterns": list(leaf_type.all_patterns()),
    }
    # The Python bindings expose neither fraction-digits nor identity bases; read the compiled
    # type. (Base identity names are opaque to cffi: test_etsi_compiled_schema_* covers them.)
    if leaf_type.base() == lib.LY_TYPE_DEC64:
        facts["fraction_digits"] = ffi.cast(
            "struct lysc_type_dec *", leaf_type.cdata
        ).fraction_digits
    if leaf_type.base() == lib.LY_TYPE_IDENT:
        bases = ffi.cast("struct lysc_type_identityref *", leaf_type.cdata).bases
        facts["identity_base_count"] = ly_array_count(bases)
    return facts


def node_facts(node: libyang.SNode) -> dict:
    facts = {
        "keyword": node.keyword(),
        "module": node.module().name(),
        "config_false": node.config_false(),
        "config_set": node.config_set(),
        "mandatory": node.mandatory(),
        "status": node.status(),
        "when": list(node.when_conditions()),
        "must": list(node.must_conditions()),
    }
    if isinstance(node, libyang.SList):
        facts["keys"] = [key.name() for key in node.keys()]  # noqa: SIM118 (list keys)
        facts["ordered"] = node.ordered()
    if isinstance(node, libyang.SContainer):
        facts["presence"] = node.presence()
    if isinstance(node, libyang.SLeaf):
        facts["default"] = node.default()
        facts["units"] = node.units()
        facts["is_key"] = node.is_key()
        facts["type"] = type_facts(node.type())
    if isinstance(node, libyang.SLeafList):
        facts["defaults"] = list(node.defaults())
        facts["units"] = node.units()
        facts["ordered"] = node.ordered()
        facts["type"] = type_facts(node.type())
    return facts


def schema_nodes(context: libyang.Context) -> dict[str, dict]:
    """Every schema node of etsi-qkd-sdn-node, data tree and notifications, by schema path."""
    nodes: dict[str, dict] = {}
    for top in context.get_module(NODE).children():
        for node in top.iter_tree(full=True):
            nodes[node.schema_path()] = node_facts(node)
    return nodes


def yin(module: libyang.Module) -> etree._Element:
    return etree.fromstring(module.print_mem("yin").encode())


def identities(module: libyang.Module) -> dict[str, list[str]]:
    return {
        element.get("name"): sorted(
            base.get("name") for base in element.findall(f"{{{YIN_NS}}}base")
        )
        for element in yin(module).iter(f"{{{YIN_NS}}}identity")
    }


def typedefs(module: libyang.Module) -> dict[str, str]:
    """Each typedef's type statement (with its substatements), documentation removed."""
    result = {}
    for element in yin(module).iter(f"{{{YIN_NS}}}typedef"):
        type_element = element.find(f"{{{YIN_NS}}}type")
        for doc in type_element.iter(*(f"{{{YIN_NS}}}{name}" for name in DOCUMENTATION)):
            doc.getparent().remove(doc)
        result[element.get("name")] = etree.tostring(type_element, method="c14n").decode()
    return result


def header(module: libyang.Module) -> dict:
    root = yin(module)
    return {
        "name": module.name(),
        "prefix": module.prefix(),
        "namespace": root.find(f"{{{YIN_NS}}}namespace").get("uri"),
        "revisions": [revision.date() for revision in module.revisions()],
        "imports": sorted((item.name(), item.prefix()) for item in module.imports()),
        "yang_version": root.find(f"{{{YIN_NS}}}yang-version").get("value")
        if root.find(f"{{{YIN_NS}}}yang-version") is not None
        else "1",
    }


# --------------------------------------------------------------------------------------------
# module headers, identities, typedefs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [TYPES, NODE])
def test_etsi_module_header_matches_the_standard(ours, reference, name):
    mine = header(ours.get_module(name))
    theirs = header(reference.get_module(name))
    assert theirs["revisions"] == ["2022-01-30", "2020-09-30"]
    if name == NODE:
        # The single deliberate difference: derived-from-or-self() needs YANG 1.1.
        assert (mine.pop("yang_version"), theirs.pop("yang_version")) == ("1.1", "1")
    assert mine == theirs


def test_etsi_identities_and_their_bases_match_the_standard(ours, reference):
    mine = identities(ours.get_module(TYPES))
    theirs = identities(reference.get_module(TYPES))
    assert len(theirs) == 41
    assert mine == theirs
    assert theirs["VIRT"] == ["QKD-LINK-TYPES"] and theirs["QKD-LINK-TYPES"] == []


def test_etsi_typedefs_match_the_standard(ours, reference):
    for name in (TYPES, NODE):
        assert typedefs(ours.get_module(name)) == typedefs(reference.get_module(name)), name
    assert set(typedefs(reference.get_module(TYPES))) >= {"wavelength", "wavelength-range-type"}


def test_etsi_sdn_node_module_has_no_identities_or_rpcs(ours):
    module = ours.get_module(NODE)
    assert identities(module) == {}
    assert all(node.keyword() in ("container", "notification") for node in module.children())


# --------------------------------------------------------------------------------------------
# schema nodes
# --------------------------------------------------------------------------------------------


def test_etsi_schema_nodes_match_the_standard_node_by_node(ours, reference):
    mine = schema_nodes(ours)
    theirs = schema_nodes(reference)
    assert len(theirs) > 150, "reference walk is incomplete"
    assert list(mine) == list(theirs), "node set or order differs"
    differing = {path: (mine[path], theirs[path]) for path in theirs if mine[path] != theirs[path]}
    assert not differing, json.dumps(differing, indent=1, default=str)[:4000]


def test_etsi_notifications_match_the_standard(ours, reference):
    def notifications(context):
        return [
            n.name() for n in context.get_module(NODE).children() if n.keyword() == "notification"
        ]

    assert notifications(ours) == notifications(reference)
    assert len(notifications(reference)) == 11


def test_etsi_compiled_schema_matches_the_standard(ours, reference):
    """Fraction digits, identity bases and everything else libyang compiled, line by line."""
    mine = without_documentation(compiled_schema_text(ours.get_module(NODE)))
    theirs = without_documentation(compiled_schema_text(reference.get_module(NODE)))
    assert "fraction-digits 3;" in theirs and "base QKD-LINK-TYPES;" in theirs
    assert mine.splitlines() == theirs.splitlines()


def test_etsi_we_differ_from_the_official_text_only_in_the_erratum_when_conditions(ours, official):
    mine = without_documentation(compiled_schema_text(ours.get_module(NODE))).splitlines()
    theirs = without_documentation(compiled_schema_text(official.get_module(NODE))).splitlines()
    assert len(mine) == len(theirs)
    changed = [(a.strip(), b.strip()) for a, b in zip(mine, theirs) if a != b]
    assert changed, "the official model's defect is expected to show here"
    for line_ours, line_official in changed:
        assert line_ours.startswith('when "derived-from-or-self(') and line_official.startswith(
            'when "'
        ), (line_ours, line_official)
    assert {line for _, line in changed} == {
        "when \"qkdl_type = 'VIRT'\" {",
        "when \"qkdl_type = 'PHYS'\" {",
        "when \"../qkdl_type = 'PHYS'\" {",
    }


def test_etsi_erratum_when_conditions_are_on_the_right_nodes(ours):
    nodes = schema_nodes(ours)
    link = f"/{NODE}:qkd_node/qkd_links/qkd_link"
    virt = "derived-from-or-self(qkdl_type, 'etsi-qkdn-types:VIRT')"
    phys = "derived-from-or-self(qkdl_type, 'etsi-qkdn-types:PHYS')"
    for leaf in ("virt_prev_hop", "virt_next_hop", "virt_bandwidth"):
        assert nodes[f"{link}/{leaf}"]["when"] == [virt]
    for leaf in ("phys_channel_att", "phys_wavelength", "phys_qkd_role"):
        assert nodes[f"{link}/{leaf}"]["when"] == [phys]
    assert nodes[f"{link}/qkdl_performance/phys_perf"]["when"] == [
        "derived-from-or-self(../qkdl_type, 'etsi-qkdn-types:PHYS')"
    ]


# --------------------------------------------------------------------------------------------
# pyang trees
# --------------------------------------------------------------------------------------------


def test_etsi_pyang_tree_is_identical_to_the_standard(
    yang_dir, etsi_reference_dir, etsi_official_dir, run_pyang
):
    def tree(folder: Path, *options: str) -> str:
        result = run_pyang(*options, "-f", "tree", str(folder / f"{NODE}.yang"), path=(folder,))
        assert result.returncode == 0, result.stderr
        return result.stdout

    mine = tree(yang_dir)
    # The validation copy calls derived-from-or-self() from a YANG 1.0 module; pyang rejects
    # that (see the next test), so its tree is rendered with exactly that error ignored.
    assert mine == tree(etsi_reference_dir, "--ignore-error=XPATH_FUNCTION")
    assert mine == tree(etsi_official_dir)
    assert "+--rw virt_next_hop*       yang:uuid" in mine


def test_etsi_derived_from_or_self_needs_yang_1_1(etsi_reference_dir, run_pyang):
    """Why our module says yang-version 1.1: in a YANG 1.0 module pyang rejects the fix."""
    result = run_pyang(
        "--strict", str(etsi_reference_dir / f"{NODE}.yang"), path=(etsi_reference_dir,)
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 3
    assert all('XPath function "derived-from-or-self" is not defined' in line for line in errors)


# --------------------------------------------------------------------------------------------
# instance data
# --------------------------------------------------------------------------------------------


def sample_node() -> dict:
    """A node with a physical link, a virtual link (relay rule) and one application."""
    return {
        f"{NODE}:qkd_node": {
            "qkdn_id": NODE_ID,
            "qkdn_status": f"{TYPES}:OPERATING",
            "qkdn_version": "qkdn 0.1.0",
            "qkdn_capabilities": {"key_relay_mode_enable": True},
            "qkd_applications": {
                "qkd_app": [
                    {
                        "app_id": APP_ID,
                        "app_status": f"{TYPES}:ON",
                        "app_type": f"{TYPES}:CLIENT",
                        "server_app_id": "sae://alice",
                        "client_app_id": ["sae://bob"],
                        "app_priority": 3,
                        "creation_time": "2026-11-27T03:00:00Z",
                        "app_statistics": {
                            "statistics": [
                                {
                                    "end_time": "2026-11-27T03:01:00Z",
                                    "start_time": "2026-11-27T03:00:00Z",
                                    "consumed_bits": 2048,
                                }
                            ]
                        },
                        "app_qos": {"max_bandwidth": 4096, "min_bandwidth": 1024, "ttl": 60},
                        "backing_qkdl_id": [VIRT_LINK_ID],
                        "local_qkdn_id": NODE_ID,
                        "remote_qkdn_id": "eeeeeeee-1111-4111-8111-111111111111",
                    }
                ]
            },
            "qkd_interfaces": {
                "qkd_interface": [
                    {
                        "qkdi_id": 1,
                        "qkdi_model": "qkdn twin BB84",
                        "qkdi_type": f"{TYPES}:DV-QKD",
                        "qkdi_att_point": {"device": "fiber-1", "port": 1},
                        "qkdi_capabilities": {
                            "role_support": f"{TYPES}:TRANSCEIVER",
                            "wavelength_range": "1,12-20,40",
                            "max_absorption": "30.5",
                        },
                        "qkdi_status": f"{TYPES}:ENABLED",
                    }
                ]
            },
            "qkd_links": {
                "qkd_link": [
                    {
                        "qkdl_id": PHYS_LINK_ID,
                        "qkdl_status": f"{TYPES}:ACTIVE",
                        "qkdl_local": {"qkdn_id": NODE_ID, "qkdi_id": 1},
                        "qkdl_remote": {
                            "qkdn_id": "dddddddd-1111-4111-8111-111111111111",
                            "qkdi_id": 1,
                        },
                        "qkdl_type": f"{TYPES}:PHYS",
                        "qkdl_applications": [APP_ID],
                        "phys_channel_att": "5.125",
                        "phys_wavelength": "20",
                        "phys_qkd_role": f"{TYPES}:TRANSMITTER",
                        "qkdl_performance": {
                            "expected_consumption": 4096,
                            "skr": 12000,
                            "eskr": 11000,
                            "phys_perf": [
                                {"perf_type": f"{TYPES}:QBER", "value": "0.021"},
                                {"perf_type": f"{TYPES}:SNR", "value": "18.5"},
                            ],
                        },
                    },
                    {
                        "qkdl_id": VIRT_LINK_ID,
                        "qkdl_status": f"{TYPES}:ACTIVE",
                        "qkdl_local": {"qkdn_id": NODE_ID},
                        "qkdl_remote": {"qkdn_id": "eeeeeeee-1111-4111-8111-111111111111"},
                        "qkdl_type": f"{TYPES}:VIRT",
                        "qkdl_applications": [APP_ID],
                        "virt_prev_hop": "dddddddd-1111-4111-8111-111111111111",
                        "virt_next_hop": ["eeeeeeee-1111-4111-8111-111111111111"],
                        "virt_bandwidth": 4096,
                    },
                ]
            },
        }
    }


def parse_json(context: libyang.Context, data: dict, fmt_out: str = "json") -> str:
    tree = context.parse_data_mem(json.dumps(data), "json", strict=True, validate_present=True)
    try:
        return tree.print_mem(fmt_out, with_siblings=True)
    finally:
        tree.free()


def test_etsi_instance_data_validates_under_ours_and_the_reference(ours, reference):
    data = sample_node()
    assert parse_json(ours, data) == parse_json(reference, data)
    xml_ours = parse_json(ours, data, "xml")
    assert xml_ours == parse_json(reference, data, "xml")
    # and the XML form reads back identically in the other context
    tree = reference.parse_data_mem(xml_ours, "xml", strict=True, validate_present=True)
    try:
        assert json.loads(tree.print_mem("json", with_siblings=True)) == json.loads(
            parse_json(ours, data)
        )
    finally:
        tree.free()


def test_etsi_official_text_rejects_the_virtual_link_we_accept(ours, official):
    """Demonstrates the defect the erratum fixes: the official `when` never holds."""
    data = sample_node()
    parse_json(ours, data)
    with pytest.raises(libyang.LibyangError, match="When condition"):
        parse_json(official, data)


@pytest.mark.parametrize(
    ("link_index", "leaf", "value"),
    [
        (0, "virt_prev_hop", "dddddddd-1111-4111-8111-111111111111"),
        (1, "phys_channel_att", "3.0"),
        (1, "phys_qkd_role", f"{TYPES}:RECEIVER"),
    ],
    ids=["virt-leaf-on-phys-link", "phys-leaf-on-virt-link", "role-on-virt-link"],
)
def test_etsi_misplaced_link_leaves_are_rejected_by_ours_and_the_reference(
    ours, reference, link_index, leaf, value
):
    data = sample_node()
    data[f"{NODE}:qkd_node"]["qkd_links"]["qkd_link"][link_index][leaf] = value
    for context in (ours, reference):
        with pytest.raises(libyang.LibyangError, match="When condition"):
            parse_json(context, data)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("qkd_links", "qkd_link", 0, "phys_wavelength"), "0"),
        (("qkd_links", "qkd_link", 0, "phys_channel_att"), "1.2345"),
        (("qkd_interfaces", "qkd_interface", 0, "qkdi_capabilities", "wavelength_range"), "20-"),
        (("qkd_links", "qkd_link", 0, "qkdl_type"), f"{TYPES}:ACTIVE"),
        (("qkd_applications", "qkd_app", 0, "app_id"), "not-a-uuid"),
    ],
    ids=["wavelength-0", "four-fraction-digits", "open-range", "wrong-identity-base", "bad-uuid"],
)
def test_etsi_invalid_values_are_rejected_by_ours_and_the_reference(ours, reference, path, value):
    data = sample_node()
    target = data[f"{NODE}:qkd_node"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    for context in (ours, reference):
        with pytest.raises(libyang.LibyangError):
            parse_json(context, data)


def test_etsi_missing_qkdn_id_is_rejected_by_ours_and_the_reference(ours, reference):
    data = sample_node()
    del data[f"{NODE}:qkd_node"]["qkdn_id"]
    for context in (ours, reference):
        with pytest.raises(libyang.LibyangError, match="qkdn_id"):
            parse_json(context, data)


def test_etsi_notifications_validate_under_ours_and_the_reference(ours, reference):
    bodies = [
        {
            f"{NODE}:sdqkdn_application_new": {
                "qkd_application": {
                    "app_type": f"{TYPES}:CLIENT",
                    "server_app_id": "sae://alice",
                    "client_app_id": ["sae://bob"],
                    "local_qkdn_id": NODE_ID,
                    "app_qos": {"max_bandwidth": 4096, "clients_shared_keys_required": True},
                }
            }
        },
        {
            f"{NODE}:sdqkdn_link_down": {
                "qkd_link": {"qkdl_id": PHYS_LINK_ID, "reason": "fiber cut"}
            }
        },
        {
            f"{NODE}:sdqkdn_link_perf_update": {
                "qkd_link": {
                    "qkdl_id": PHYS_LINK_ID,
                    "performance": {
                        "skr": 100,
                        "phys_perf": [{"perf_type": f"{TYPES}:QBER", "value": "0.110"}],
                    },
                }
            }
        },
        {
            f"{NODE}:alarm": {
                "link": {
                    "qkdl_id": PHYS_LINK_ID,
                    "qkdl_status": f"{TYPES}:OFF",
                    "message": "QBER above threshold",
                    "severity": f"{TYPES}:MAJOR",
                }
            }
        },
    ]
    for body in bodies:
        printed = []
        for context in (ours, reference):
            notification = context.parse_op_mem(
                "json", json.dumps(body), libyang.DataType.NOTIF_YANG
            )
            try:
                notification.validate_op(libyang.DataType.NOTIF_YANG)
                printed.append(notification.print_mem("xml"))
            finally:
                notification.free()
        assert printed[0] == printed[1]
