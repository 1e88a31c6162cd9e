"""Which nodes an in-place patch flags for re-validation: the parent whose children it
removed or replaced, and every node of the parent's subtree that has a ``when`` — the same
``when`` conditions as flagging the whole subtree, so in place and on a validated copy still
agree, however deep the ``when`` sits and whatever it refers to."""

from __future__ import annotations

from pathlib import Path

import libyang
import pytest
from _libyang import ffi, lib
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.rpc_error import RpcError
from qkd_agent.tree_patch import WhenNodes, when_nodes
from qkd_agent.yang_context import load_context
from qkdn.namespaces import NETCONF_BASE_NS

NS = "urn:qkdn:test:when-deep"
MODULE = f"""
module when-deep {{
  yang-version 1.1;
  namespace "{NS}";
  prefix wd;
  container top {{
    leaf mode {{ type string; }}
    leaf plain {{ type string; }}
    container items {{
      list item {{ key name; leaf name {{ type string; }} leaf note {{ type string; }} }}
    }}
    container deep {{
      container inner {{
        leaf needs-mode {{ type string; when "../../../mode = 'on'"; }}
        leaf needs-item {{ type string; when "count(../../../items/item) > 0"; }}
        leaf free {{ type string; }}
        leaf dflt {{ type string; default "d"; when "../../../mode = 'on'"; }}
      }}
      choice pick {{
        case a {{
          when "../mode = 'on'";
          leaf in-case {{ type string; }}
        }}
        case b {{ leaf other {{ type string; }} }}
      }}
    }}
  }}
}}
"""
TOP = "when-deep:top"
INITIAL = {TOP: {"mode": "on", "plain": "p", "items": {"item": [{"name": "a"}]},
                 "deep": {"inner": {"needs-mode": "x", "needs-item": "y", "free": "z"},
                          "in-case": "c"}}}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> libyang.Context:
    folder: Path = tmp_path_factory.mktemp("yang")
    (folder / "when-deep.yang").write_text(MODULE)
    return load_context(folder)


def config(body: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
                            f'<top xmlns="{NS}">{body}</top></config>')


EDITS = [
    "<mode nc:operation='delete'/>",                        # two deep whens turn false
    "<mode>off</mode>",                                     # replaced: the same
    "<items><item nc:operation='delete'><name>a</name></item></items>",  # empties items
    "<plain nc:operation='delete'/>",                        # nothing depends on it
    "<mode>on</mode><plain>q</plain>",                       # no removal at all
    ("<mode nc:operation='delete'/><deep><inner><needs-mode nc:operation='delete'/>"
     "</inner><in-case nc:operation='delete'/></deep>"),     # the dependants go too
    ("<items nc:operation='delete'/><deep><inner><needs-item nc:operation='delete'/>"
     "</inner></deep>"),
    "<mode>on</mode>",                                       # back on: the default returns
]


def with_defaults(store: Datastore) -> str:
    """The running tree printed with its implicit defaults (``running_json`` omits them)."""
    out = ffi.new("char **")
    flags = lib.LYD_PRINT_WITHSIBLINGS | lib.LYD_PRINT_SHRINK | lib.LYD_PRINT_WD_ALL_TAG
    assert lib.lyd_print_mem(out, store._tree.first, lib.LYD_JSON, flags) == lib.LY_SUCCESS
    try:
        return ffi.string(out[0]).decode()
    finally:
        lib.free(out[0])


def outcome(store: Datastore, body: str) -> tuple[str, object]:
    try:
        store.edit_config(config(body))
    except RpcError as exc:
        return "refused", (exc.tag, exc.path)
    return "applied", store.running_json(), with_defaults(store)


@pytest.mark.parametrize("body", EDITS)
def test_in_place_agrees_with_a_validated_copy(ctx: libyang.Context, body: str) -> None:
    in_place = Datastore(ctx, INITIAL)
    on_copy = Datastore(ctx, INITIAL)
    on_copy._referencing = on_copy._referencing | {TOP}   # forces the copy path
    assert TOP not in in_place._referencing
    fresh = outcome(on_copy, body)
    assert outcome(in_place, body) == fresh
    if fresh[0] == "refused":
        assert in_place.running_json() == INITIAL
    follow = "<plain>again</plain>"
    assert outcome(in_place, follow) == outcome(on_copy, follow)


def test_edits_in_sequence_agree(ctx: libyang.Context) -> None:
    in_place = Datastore(ctx, INITIAL)
    on_copy = Datastore(ctx, INITIAL)
    on_copy._referencing = on_copy._referencing | {TOP}
    seen = set()
    for body in EDITS + list(reversed(EDITS)):
        result = outcome(in_place, body)
        assert result == outcome(on_copy, body)
        seen.add(result[0])
    assert seen == {"applied", "refused"}


def test_a_default_under_a_when_appears_as_on_a_copy(ctx: libyang.Context) -> None:
    off = {TOP: {"mode": "off", "items": {"item": [{"name": "a"}]},
                 "deep": {"inner": {"free": "z"}}}}
    in_place = Datastore(ctx, off)
    on_copy = Datastore(ctx, off)
    on_copy._referencing = on_copy._referencing | {TOP}
    assert '"dflt"' not in with_defaults(in_place)
    result = outcome(in_place, "<mode>on</mode>")   # the when of the default turns true
    assert result == outcome(on_copy, "<mode>on</mode>")
    assert result[0] == "applied" and '"dflt":"d"' in result[2]
    # and back: whatever libyang makes of a default whose when turns false, both agree
    assert outcome(in_place, "<mode>off</mode>") == outcome(on_copy, "<mode>off</mode>")


def _schema_names(nodes: frozenset) -> set[str]:
    return {ffi.string(node.name).decode() for node in nodes}


def test_when_nodes_of_the_test_module(ctx: libyang.Context) -> None:
    found = when_nodes(ctx)
    # a when on the node itself, or on the case it sits in
    assert _schema_names(found.has_when) == {"needs-mode", "needs-item", "dflt", "in-case"}
    # the data nodes whose subtree holds one of those
    assert _schema_names(found.holds_when) == {"top", "deep", "inner"}


def test_when_nodes_of_the_etsi_node(ctx: libyang.Context) -> None:
    etsi = load_context()   # kept alive while its schema nodes are read
    found = when_nodes(etsi)
    names = _schema_names(found.has_when)
    assert {"virt_prev_hop", "virt_next_hop", "virt_bandwidth", "phys_channel_att",
            "phys_wavelength", "phys_qkd_role"} <= names
    assert {"qkd_node", "qkd_links", "qkd_link"} <= _schema_names(found.holds_when)
    assert "qkd_applications" not in _schema_names(found.holds_when)


def _flagged_new(tree_first: object) -> set[str]:
    out = set()
    stack = [tree_first]
    while stack:
        node = stack.pop()
        if node.flags & lib.LYD_NEW:
            out.add(ffi.string(node.schema.name).decode())
        child = lib.lyd_child(node)
        while child != ffi.NULL:
            stack.append(child)
            child = child.next
    return out


def test_a_removal_flags_the_parent_and_its_when_nodes_only(ctx: libyang.Context) -> None:
    from qkd_agent.tree_patch import patch_tree

    store = Datastore(ctx, INITIAL)
    new = {TOP: {**INITIAL[TOP]}}
    del new[TOP]["plain"]
    found: WhenNodes = when_nodes(ctx)
    patch_tree(ctx, store.schema, store._tree.first, INITIAL, new, found)
    assert _flagged_new(store._tree.first) == {"top", "deep", "inner", "needs-mode",
                                               "needs-item", "dflt", "in-case"}
    store._tree.validate()   # and the tree validates as the copy would
    assert _flagged_new(store._tree.first) == set()


# Known limitation (on main before session 7 as well): a `when` is evaluated again in place
# only below a parent whose children the patch removed or replaced. A `when` that depends on
# a node the edit *creates*, or on the number of a list's entries from outside the list's
# parent, is not: such an edit is accepted in place and refused on a copy. None of the
# shipped modules has such a `when` (docs/datastore.md). Flagging every `when` node of each
# changed top-level node closes it, at O(list entries) per edit (+20-30 % datastore CPU at a
# relay holding 50 sessions), so it is not done; these tests turn green when it is.
GAP_NS = "urn:qkdn:test:when-gap"
GAP_MODULE = f"""
module when-gap {{
  yang-version 1.1;
  namespace "{GAP_NS}";
  prefix wg;
  container gap {{
    leaf mode {{ type string; }}
    leaf without-mode {{ type string; when "not(../mode)"; }}
    container items {{ list item {{ key name; leaf name {{ type string; }} }} }}
    leaf few {{ type string; when "count(../items/item) < 2"; }}
  }}
}}
"""
GAP = "when-gap:gap"


@pytest.fixture(scope="module")
def gap_ctx(tmp_path_factory: pytest.TempPathFactory) -> libyang.Context:
    folder: Path = tmp_path_factory.mktemp("yang-gap")
    (folder / "when-gap.yang").write_text(GAP_MODULE)
    return load_context(folder)


@pytest.mark.xfail(strict=True, reason="known gap: a when on a created node or an entry "
                   "count outside the changed parent is not evaluated again in place")
@pytest.mark.parametrize(("initial", "body"), [
    ({GAP: {"without-mode": "w"}}, "<mode>on</mode>"),
    ({GAP: {"few": "f", "items": {"item": [{"name": "a"}]}}},
     "<items><item><name>b</name></item></items>"),
])
def test_known_gap_when_on_a_created_node(gap_ctx: libyang.Context, initial: dict,
                                          body: str) -> None:
    def edit(store: Datastore) -> tuple[str, object]:
        try:
            store.edit_config(etree.fromstring(
                f'<config xmlns="{NETCONF_BASE_NS}"><gap xmlns="{GAP_NS}">{body}</gap>'
                "</config>"))
        except RpcError as exc:
            return "refused", (exc.tag, exc.path)
        return "applied", store.running_json()

    in_place = Datastore(gap_ctx, initial)
    on_copy = Datastore(gap_ctx, initial)
    on_copy._referencing = on_copy._referencing | {GAP}
    assert edit(in_place) == edit(on_copy)
