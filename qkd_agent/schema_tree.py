"""A plain-Python mirror of the compiled YANG data tree, built once per libyang context.

The edit-config walker and the subtree filter resolve XML elements (namespace, local name) to
schema nodes many times per RPC; walking libyang's C structures through cffi for each lookup
would cost more than the whole edit. :func:`build_schema_tree` copies what those walkers
need (kind, config, keys, JSON member name, value encoding) into frozen dataclasses.
Choices and cases are transparent, as on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import libyang
from _libyang import ffi
from libyang.schema import SContainer, SLeaf, SLeafList, SList, SNode, Type

from qkd_agent.yang_context import module_namespace


class NodeKind(StrEnum):
    CONTAINER = "container"
    LIST = "list"
    LEAF = "leaf"
    LEAF_LIST = "leaf-list"
    ANY = "anydata"


class ValueKind(StrEnum):
    """How a leaf value is written in RFC 7951 JSON."""

    NUMBER = "number"  # int8..int32, uint8..uint32: a JSON number
    STRING = "string"  # string, enumeration, bits, binary, 64-bit ints, union
    DECIMAL = "decimal64"  # a JSON string
    BOOLEAN = "boolean"
    EMPTY = "empty"  # [null]
    IDENTITYREF = "identityref"  # "module:identity"


_NUMBER_TYPES = {Type.INT8, Type.INT16, Type.INT32, Type.UINT8, Type.UINT16, Type.UINT32}


@dataclass(frozen=True, eq=False)
class SchemaNode:
    """One data node of the schema. ``children`` maps (namespace, name) to the child."""

    name: str
    module: str
    namespace: str
    kind: NodeKind
    config: bool
    json_name: str
    keys: tuple[str, ...] = ()
    value_kind: ValueKind | None = None
    #: a presence container (exists even when empty)
    presence: bool = False
    #: (choice, case) pairs between this node and its data parent, outermost first.
    cases: tuple[tuple[str, str], ...] = ()
    children: dict[tuple[str, str], SchemaNode] = field(default_factory=dict)
    #: the same children keyed by lxml's Clark notation tag, ``{namespace}name``
    children_by_tag: dict[str, SchemaNode] = field(default_factory=dict)
    #: the same children keyed by their RFC 7951 member name under this node
    children_by_json: dict[str, SchemaNode] = field(default_factory=dict)

    def add_child(self, node: SchemaNode) -> None:
        self.children[(node.namespace, node.name)] = node
        self.children_by_tag[f"{{{node.namespace}}}{node.name}"] = node
        self.children_by_json[node.json_name] = node

    def child(self, namespace: str, name: str) -> SchemaNode | None:
        return self.children.get((namespace, name))

    @cached_property
    def key_nodes(self) -> tuple[tuple[SchemaNode, str], ...]:
        """A list's key leaves in key order, each with its Clark tag (``{namespace}name``);
        computed at first use, once the children are all there."""
        out = []
        for key in self.keys:
            node = self.child_by_name(key)
            assert node is not None, f"key {key} of {self.name} is not a child"
            out.append((node, f"{{{node.namespace}}}{node.name}"))
        return tuple(out)

    @cached_property
    def key_tags(self) -> frozenset[str]:
        """The Clark tags of the list's keys (as children of an entry element: the list's
        own namespace, as the edit walk has always matched them)."""
        return frozenset(f"{{{self.namespace}}}{key}" for key in self.keys)

    def child_by_name(self, name: str) -> SchemaNode | None:
        """The child called ``name`` in any namespace (first match); for keys and wildcards."""
        for (_, child_name), node in self.children.items():
            if child_name == name:
                return node
        return None

    def excludes(self, other: SchemaNode) -> bool:
        """True when ``other`` sits in another case of a choice this node is in (RFC 7950
        §7.9: creating one case's node removes the other cases' nodes)."""
        if not self.cases or not other.cases:
            return False
        mine = dict(self.cases)
        return any(choice in mine and mine[choice] != case for choice, case in other.cases)

    def path_step(self, parent_module: str | None) -> str:
        """This node's step in a libyang/RFC 7951-style path (module prefix on a change)."""
        return self.name if parent_module == self.module else f"{self.module}:{self.name}"


@dataclass(frozen=True, eq=False)
class SchemaTree:
    """The data roots of every implemented module, plus module/namespace maps."""

    root: SchemaNode
    module_by_namespace: dict[str, str]
    namespace_by_module: dict[str, str]


_KIND = {
    SNode.CONTAINER: NodeKind.CONTAINER,
    SNode.LIST: NodeKind.LIST,
    SNode.LEAF: NodeKind.LEAF,
    SNode.LEAFLIST: NodeKind.LEAF_LIST,
    SNode.ANYXML: NodeKind.ANY,
    SNode.ANYDATA: NodeKind.ANY,
}

_DATA_TYPES = (
    SNode.CONTAINER,
    SNode.LIST,
    SNode.LEAF,
    SNode.LEAFLIST,
    SNode.ANYXML,
    SNode.ANYDATA,
)


def _value_kind(leaf_type: Type) -> ValueKind:
    base = leaf_type.base()
    if base == Type.LEAFREF:
        target = leaf_type.leafref_type()
        return _value_kind(target) if target is not None else ValueKind.STRING
    if base in _NUMBER_TYPES:
        return ValueKind.NUMBER
    if base == Type.DEC64:
        return ValueKind.DECIMAL
    if base == Type.BOOL:
        return ValueKind.BOOLEAN
    if base == Type.EMPTY:
        return ValueKind.EMPTY
    if base == Type.IDENT:
        return ValueKind.IDENTITYREF
    return ValueKind.STRING


def _cases_of(snode: SNode) -> tuple[tuple[str, str], ...]:
    pairs = []
    case_name = None
    parent = snode.cdata.parent
    while parent != ffi.NULL and parent.nodetype in (SNode.CHOICE, SNode.CASE):
        name = ffi.string(parent.name).decode()
        if parent.nodetype == SNode.CASE:
            case_name = name
        else:
            # a shorthand case (a data node directly under a choice) is its own case
            pairs.append((name, case_name if case_name is not None else snode.name()))
            case_name = None
        parent = parent.parent
    return tuple(reversed(pairs))


def _build_node(snode: SNode, parent_module: str | None) -> SchemaNode:
    module = snode.module()
    module_name = module.name()
    kind = _KIND[snode.nodetype()]
    value_kind = None
    keys: tuple[str, ...] = ()
    if isinstance(snode, (SLeaf, SLeafList)):
        value_kind = _value_kind(snode.type())
    if isinstance(snode, SList):
        keys = tuple(key.name() for key in snode.keys())  # noqa: SIM118 (SList.keys: key nodes)
    name = snode.name()
    node = SchemaNode(
        name=name,
        module=module_name,
        namespace=module_namespace(module),
        kind=kind,
        config=not snode.config_false(),
        json_name=name if parent_module == module_name else f"{module_name}:{name}",
        keys=keys,
        value_kind=value_kind,
        cases=_cases_of(snode),
        presence=isinstance(snode, SContainer) and snode.presence() is not None,
    )
    if isinstance(snode, (SContainer, SList)):
        for child in snode.children(types=_DATA_TYPES):
            node.add_child(_build_node(child, module_name))
    return node


def build_schema_tree(ctx: libyang.Context) -> SchemaTree:
    """Mirror the data nodes of every implemented module of ``ctx``."""
    root = SchemaNode(
        name="", module="", namespace="", kind=NodeKind.CONTAINER, config=True, json_name=""
    )
    module_by_namespace: dict[str, str] = {}
    namespace_by_module: dict[str, str] = {}
    for module in ctx:
        namespace = module_namespace(module)
        module_by_namespace[namespace] = module.name()
        namespace_by_module[module.name()] = namespace
        if not module.implemented():
            continue
        for snode in module.children(types=_DATA_TYPES):
            root.add_child(_build_node(snode, None))
    return SchemaTree(root, module_by_namespace, namespace_by_module)
