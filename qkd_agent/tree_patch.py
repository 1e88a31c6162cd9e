"""Bring a copy of the running libyang tree to a candidate snapshot, change by change.

Parsing a whole candidate costs libyang a full parse of every value (most of an edit's
time); duplicating the validated running tree and changing only what the edit changed is
several times cheaper. Snapshots are copy-on-write (:mod:`qkd_agent.edit_operations`), so
``old is new`` tells an untouched subtree at once. Changed leaves are replaced, new entries
and subtrees are parsed in place from RFC 7951 JSON fragments (types checked by libyang as
they are stored), removed ones are freed. The patched tree is then validated as a whole by
the caller (``DataTree.validate``): this is an optimisation of how the candidate tree is
built, not of what is validated.

A patched tree that was validated before keeps libyang's record of what it validated: only
nodes flagged new are type-checked and have their ``when`` evaluated again (``must``,
``mandatory``, ``unique`` and cardinality are checked over the whole tree every time). So
every parent whose children the patch removed or replaced has its subtree flagged new (a
``when`` on a sibling, e.g. ``derived-from-or-self(../qkdl_type, ...)``, is evaluated
again), and :func:`referencing_top_level_names` tells the datastore which top-level nodes
hold leafrefs or instance-identifiers (whose targets may change anywhere): trees with those
are patched on a copy, which libyang validates entirely.

Anything unusual (a top-level node appearing or disappearing, a key value that cannot be
quoted in a path, a node not found where the snapshot says it is) raises
:class:`PatchNotApplicable`, and the caller falls back to parsing the whole candidate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import libyang
from _libyang import ffi, lib

from qkd_agent.libyang_errors import LibyangIssue, LibyangParseError, collect_issues
from qkd_agent.schema_tree import NodeKind, SchemaNode, SchemaTree

_PARSE_FLAGS = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE


class PatchNotApplicable(Exception):
    """The change cannot be applied in place; parse the whole candidate instead."""


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise PatchNotApplicable("key value with both quote characters")


def referencing_top_level_names(ctx: libyang.Context) -> frozenset[str]:
    """RFC 7951 names (``module:node``) of the top-level data nodes of implemented modules
    whose subtree has a leafref or instance-identifier (in a union too)."""
    from libyang.schema import SLeaf, SLeafList, Type

    def references(node: Any) -> bool:
        if isinstance(node, (SLeaf, SLeafList)):
            kind = node.type()
            bases = [kind.base()]
            if kind.base() == Type.UNION:
                bases += [member.base() for member in kind.union_types()]
            return Type.LEAFREF in bases or Type.INST in bases
        try:
            children = list(node.children())
        except (AttributeError, TypeError):
            return False
        return any(references(child) for child in children)

    names = set()
    for module in ctx:
        if module.implemented():
            for top in module.children():
                if references(top):
                    names.add(f"{module.name()}:{top.name()}")
    return frozenset(names)


@dataclass(frozen=True)
class WhenNodes:
    """The schema nodes of a context (``struct lysc_node *``, compared by address) that a
    patch re-checks below a parent whose children it removed or replaced."""

    #: data nodes with a ``when`` of their own or on a choice/case between them and their
    #: data parent (libyang's ``lysc_has_when``)
    has_when: frozenset[Any]
    #: data nodes with such a node somewhere below them
    holds_when: frozenset[Any]


_LY_ARRAY_COUNT = "uint64_t *"  #: libyang's LY_ARRAY_COUNT_TYPE sits before each sized array


def _own_when(snode: Any) -> bool:
    """libyang's ``lysc_has_when``: a ``when`` on the node, or on a choice or case between
    it and its data parent (a ``uses`` or ``augment`` ``when`` is compiled into the nodes)."""
    node = snode
    while node != ffi.NULL:
        whens = lib.lysc_node_when(node)
        if whens != ffi.NULL and ffi.cast(_LY_ARRAY_COUNT, whens)[-1]:
            return True
        node = node.parent
        if node == ffi.NULL or not node.nodetype & (lib.LYS_CHOICE | lib.LYS_CASE):
            return False
    return False


def when_nodes(ctx: libyang.Context) -> WhenNodes:
    """The :class:`WhenNodes` of every implemented module of ``ctx`` (once per context)."""
    has, holds = set(), set()

    def visit(snode: Any) -> bool:
        """Record ``snode``'s subtree; True if it has a ``when`` node."""
        below = False
        try:
            children = list(snode.children())
        except (AttributeError, TypeError):
            children = []
        for child in children:
            below = visit(child) or below
        if below:
            holds.add(snode.cdata)
        if _own_when(snode.cdata):
            has.add(snode.cdata)
            return True
        return below

    for module in ctx:
        if module.implemented():
            for top in module.children():
                visit(top)
    return WhenNodes(frozenset(has), frozenset(holds))


_NEW = lib.LYD_NEW
_KEEP = ~lib.LYD_WHEN_TRUE  #: every flag but the cached result of the node's ``when``


def _flag_new(node: Any, whens: WhenNodes | None = None) -> None:
    """Flag ``node`` new and forget its ``when`` result, and so for the nodes below it that
    the next validation must check again as it checks a copy (lyd_dup flags every node).

    ``whens`` None flags the whole subtree. With the context's :class:`WhenNodes` it flags
    only what the whole subtree's flags make libyang do differently there: every node with a
    ``when`` (evaluated again, as its value may depend on what changed) and every inner node
    on the way to one (its implicit children — a default whose ``when`` turned true — are
    created again). The other nodes of the subtree are unchanged: flagged, libyang would
    re-check their types (a no-op without leafrefs or instance-identifiers, whose trees are
    never patched in place) and their children's duplicates and defaults (unchanged too)."""
    node.flags = (node.flags & _KEEP) | _NEW
    if whens is not None:
        has, holds = whens.has_when, whens.holds_when
        if node.schema not in holds:
            return
        stack = [node]
        child_of, null = lib.lyd_child, ffi.NULL
        while stack:
            child = child_of(stack.pop())
            while child != null:
                schema = child.schema
                if schema in holds:
                    child.flags = (child.flags & _KEEP) | _NEW
                    stack.append(child)
                elif schema in has:
                    child.flags = (child.flags & _KEEP) | _NEW
                child = child.next
        return
    stack = [node]
    while stack:
        current = stack.pop()
        current.flags = (current.flags & _KEEP) | _NEW
        child = lib.lyd_child(current)
        while child != ffi.NULL:
            stack.append(child)
            child = child.next


class _Patcher:
    def __init__(self, ctx: libyang.Context, schema: SchemaTree) -> None:
        self.ctx = ctx
        self.schema = schema
        self.touched: list[Any] = []  #: parents whose children were removed or replaced

    def find(self, parent: Any, path: str) -> Any:
        found = ffi.new("struct lyd_node **")
        if lib.lyd_find_path(parent, path.encode(), 0, found) != lib.LY_SUCCESS:
            lib.ly_err_clean(self.ctx.cdata, ffi.NULL)
            raise PatchNotApplicable(f"{path} not found")
        return found[0]

    def drop_default(self, parent: Any, path: str) -> None:
        """Free the implicit default instance of a leaf about to get an explicit value
        (parsing the value beside it would be a duplicate instance)."""
        found = ffi.new("struct lyd_node **")
        if lib.lyd_find_path(parent, path.encode(), 0, found) != lib.LY_SUCCESS:
            lib.ly_err_clean(self.ctx.cdata, ffi.NULL)
            return
        if found[0].flags & lib.LYD_DEFAULT:
            lib.lyd_free_tree(found[0])

    def parse_into(self, parent: Any, node: SchemaNode, value: Any) -> None:
        text = json.dumps({f"{node.module}:{node.name}": value})
        lib.ly_err_clean(self.ctx.cdata, ffi.NULL)
        in_p = ffi.new("struct ly_in **")
        buffer = ffi.new("char[]", text.encode())
        if lib.ly_in_new_memory(buffer, in_p) != lib.LY_SUCCESS:
            raise LibyangParseError(collect_issues(self.ctx))
        try:
            ret = lib.lyd_parse_data(
                self.ctx.cdata, parent, in_p[0], lib.LYD_JSON, _PARSE_FLAGS, 0, ffi.NULL
            )
        finally:
            lib.ly_in_free(in_p[0], 0)
        if ret != lib.LY_SUCCESS:
            raise LibyangParseError(
                [self.rooted(issue, parent, node) for issue in collect_issues(self.ctx)]
            )

    def rooted(self, issue: LibyangIssue, parent: Any, node: SchemaNode) -> LibyangIssue:
        """libyang locates errors in a fragment from the fragment's root; prefix the
        parent's path so that error-path is absolute in the whole tree."""
        fragment_root = f"/{node.module}:{node.name}"
        if issue.path is None or not issue.path.startswith(fragment_root):
            return issue
        raw = lib.lyd_path(parent, lib.LYD_PATH_STD, ffi.NULL, 0)
        try:
            parent_path = ffi.string(raw).decode()
        finally:
            lib.free(raw)
        rest = issue.path[len(fragment_root):]
        return replace(issue, path=f"{parent_path}/{node.json_name}{rest}")

    def entry_path(self, node: SchemaNode, entry: dict[str, Any]) -> str:
        step = node.json_name
        return step + "".join(f"[{key}={_literal(entry[key])}]" for key in node.keys)

    def patch(self, parent: Any, schema: SchemaNode, old: dict[str, Any],
              new: dict[str, Any]) -> None:
        replaced = False
        for name in list(old) + [k for k in new if k not in old]:
            before, after = old.get(name), new.get(name)
            if before is after or name in schema.keys:  # keys are equal by matching
                continue
            node = schema.children_by_json.get(name)
            if node is None:
                raise PatchNotApplicable(f"no schema node {name}")
            if node.kind is NodeKind.LEAF and before == after:
                continue
            if node.kind is NodeKind.LIST:
                self.patch_list(parent, node, before or [], after or [])
            elif node.kind is NodeKind.LEAF_LIST:
                self.patch_leaf_list(parent, node, before or [], after or [])
                replaced = True
            elif after is None:
                lib.lyd_free_tree(self.find(parent, name))
                replaced = True
            elif before is None:
                if node.kind is NodeKind.LEAF:
                    self.drop_default(parent, name)
                self.parse_into(parent, node, after)
            elif node.kind is NodeKind.CONTAINER:
                self.patch(self.find(parent, name), node, before, after)
            else:  # a leaf with a new value
                lib.lyd_free_tree(self.find(parent, name))
                self.parse_into(parent, node, after)
                replaced = True
        if replaced:
            self.touched.append(parent)

    def patch_list(self, parent: Any, node: SchemaNode, before: list[dict[str, Any]],
                   after: list[dict[str, Any]]) -> None:
        def key_of(entry: dict[str, Any]) -> tuple[Any, ...]:
            return tuple(entry.get(key) for key in node.keys)

        # copy on write: an entry the edit did not touch is the very same object
        kept = {id(entry) for entry in after}.intersection(id(entry) for entry in before)
        old_changed = {key_of(e): e for e in before if id(e) not in kept}
        created = []
        for entry in after:
            if id(entry) in kept:
                continue
            old_entry = old_changed.pop(key_of(entry), None)
            if old_entry is None:
                created.append(entry)
            else:
                self.patch(self.find(parent, self.entry_path(node, entry)), node, old_entry,
                           entry)
        for entry in old_changed.values():  # entries that are gone
            lib.lyd_free_tree(self.find(parent, self.entry_path(node, entry)))
        if created:
            self.parse_into(parent, node, created)

    def patch_leaf_list(self, parent: Any, node: SchemaNode, before: list[Any],
                        after: list[Any]) -> None:
        for value in before:
            if value not in after:
                lib.lyd_free_tree(self.find(parent, f"{node.json_name}[.={_literal(value)}]"))
        added = [value for value in after if value not in before]
        if added:
            self.parse_into(parent, node, added)


def patch_tree(
    ctx: libyang.Context,
    schema: SchemaTree,
    first: Any,
    old: dict[str, Any],
    new: dict[str, Any],
    whens: WhenNodes | None = None,
) -> None:
    """Change the forest starting at ``first`` (a copy of the tree of ``old``) into ``new``.

    ``whens`` (:func:`when_nodes` of ``ctx``) limits what is flagged for re-validation below
    a parent whose children were removed or replaced to the nodes whose checks can change
    (:func:`_flag_new`); None flags those parents' whole subtrees.

    Raises :class:`PatchNotApplicable` (fall back to a full parse) or
    :class:`~qkd_agent.libyang_errors.LibyangParseError` (a value libyang refuses)."""
    if first is None or set(old) != set(new):
        raise PatchNotApplicable("top-level nodes appear or disappear")
    patcher = _Patcher(ctx, schema)
    for name, before in old.items():
        if before is new[name]:
            continue
        top = schema.root.children_by_json.get(name)
        if top is None or top.kind is not NodeKind.CONTAINER:
            raise PatchNotApplicable(f"top-level {name}")
        patcher.patch(patcher.find(first, f"/{name}"), top, before, new[name])
    for parent in patcher.touched:
        _flag_new(parent, whens)
