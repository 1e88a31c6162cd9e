"""RFC 6241 §7.2 ``<edit-config>`` semantics applied to an RFC 7951 JSON working copy.

:func:`apply_edit` walks the ``<config>`` element against the schema mirror and derives a
candidate JSON tree from the running one, node by node (copy on write: untouched subtrees
are shared, the running tree is never modified): ``merge``, ``replace``, ``create``, ``delete``, ``remove``
(the ``nc:operation`` attribute at any level, inherited by descendants), with
``default-operation`` merge / replace / none. It detects what only the edit can tell —
unknown namespaces and elements, ``config false`` nodes, missing list keys, bad operation
attributes, ``data-exists`` on create and ``data-missing`` on delete — and raises the matching
:class:`~qkd_agent.rpc_error.RpcError`. Whole-tree validation (types, ranges, when, must,
leafref, mandatory, unique) is libyang's job afterwards, in :mod:`qkd_agent.datastore`.

XML values are converted to their RFC 7951 JSON encoding here (numbers, booleans, empty,
decimal64 in canonical form, identityrefs re-qualified by module name from the XML namespace
in scope).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from lxml import etree

from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError
from qkd_agent.schema_tree import NodeKind, SchemaNode, SchemaTree, ValueKind
from qkdn.namespaces import NETCONF_BASE_NS

OPERATION_ATTRIBUTE = f"{{{NETCONF_BASE_NS}}}operation"

JsonObject = dict[str, Any]


class EditOperation(StrEnum):
    """The ``nc:operation`` attribute values, plus ``none`` (default-operation only)."""

    MERGE = "merge"
    REPLACE = "replace"
    CREATE = "create"
    DELETE = "delete"
    REMOVE = "remove"
    NONE = "none"


class DefaultOperation(StrEnum):
    MERGE = "merge"
    REPLACE = "replace"
    NONE = "none"


class TestOption(StrEnum):
    TEST_THEN_SET = "test-then-set"
    SET = "set"
    TEST_ONLY = "test-only"


class ErrorOption(StrEnum):
    STOP_ON_ERROR = "stop-on-error"
    CONTINUE_ON_ERROR = "continue-on-error"
    ROLLBACK_ON_ERROR = "rollback-on-error"


@dataclass
class RpcErrors(RpcError):
    """Several ``<rpc-error>`` of one ``<edit-config>`` (``continue-on-error``).

    Its own fields are those of the first error, so code that knows only :class:`RpcError`
    still reports something right; :meth:`to_xml_list` gives one element per error."""

    errors: list[RpcError] = field(default_factory=list)

    @classmethod
    def of(cls, errors: list[RpcError]) -> RpcError:
        """The single error itself, or an :class:`RpcErrors` for several."""
        if len(errors) == 1:
            return errors[0]
        first = errors[0]
        return cls(
            tag=first.tag, message=first.message, type=first.type, severity=first.severity,
            app_tag=first.app_tag, path=first.path, info=dict(first.info), errors=list(errors),
        )

    def to_xml_list(self) -> list[etree._Element]:
        return [error.to_xml() for error in self.errors]


#: RFC 7950 §9.2.1: an optional sign and ASCII decimal digits (Python's int() would also take
#: "1_000" and non-ASCII digits such as "４２").
_INTEGER = re.compile(r"[+-]?[0-9]+")
#: XML white space (XML 1.0 production S); str.strip() alone would also drop U+00A0, U+2003...
_XML_SPACE = " \t\r\n"

#: default-operation → the operation its elements inherit
_DEFAULT_TO_EDIT = {default: EditOperation(default.value) for default in DefaultOperation}

_ATTRIBUTE_OPERATIONS = {
    op.value: op for op in EditOperation if op is not EditOperation.NONE
}


#: An ``error-path`` written only when an error needs it: the walk passes each node's path
#: as ``(parent path, schema node, parent's module, list keys, suffix)`` (a tuple costs
#: less than the text, which most edits never use); a plain string is a path as it is.
ErrorPath = str | tuple[Any, ...]


def error_path_text(path: ErrorPath | None) -> str | None:
    """The text of a lazily built path: ``/module:node/child[key='value']...``."""
    if path is None or isinstance(path, str):
        return path
    parent, node, parent_module, keys, suffix = path
    text = error_path_text(parent) or ""
    if node is not None:
        text = f"{text}/{node.path_step(parent_module)}"
    if keys:
        text += "".join(f"[{name}='{_predicate_value(value)}']" for name, value in keys.items())
    return text + suffix


def _error(
    tag: ErrorTag,
    message: str,
    path: ErrorPath | None,
    element: str | None = None,
    **extra_info: str,
) -> RpcError:
    info = {}
    if element is not None:
        info["bad-element"] = element
    info.update({key.replace("_", "-"): value for key, value in extra_info.items()})
    return RpcError(tag=tag, message=message, type=ErrorType.APPLICATION,
                    path=error_path_text(path), info=info)


def _is_element(node: Any) -> bool:
    return isinstance(node.tag, str)


def _has_child_element(element: etree._Element) -> bool:
    return len(element) > 0 and next(element.iterchildren(etree.Element), None) is not None


def _split_tag(tag: str) -> tuple[str, str]:
    """``{namespace}name`` → (namespace, name); ("", name) without a namespace (what
    ``etree.QName`` gives, without making one per element of every edit)."""
    if tag[:1] == "{":
        end = tag.find("}")
        return tag[1:end], tag[end + 1:]
    return "", tag


def json_value(node: SchemaNode, element: etree._Element, schema: SchemaTree,
               path: ErrorPath) -> Any:
    """The RFC 7951 JSON value of the leaf or leaf-list ``element`` (schema ``node``).

    Numbers and booleans that do not even parse are rejected here with ``invalid-value``;
    every other constraint (range, pattern, identity base...) is left to libyang.
    """
    text = element.text or ""
    kind = node.value_kind
    if kind is ValueKind.STRING:  # the usual case (uuids, names)
        return text
    if kind is ValueKind.NUMBER:
        if not _INTEGER.fullmatch(text.strip(_XML_SPACE)):
            raise _error(ErrorTag.INVALID_VALUE, f'"{text}" is not an integer', path, node.name)
        return int(text.strip(_XML_SPACE))
    if kind is ValueKind.BOOLEAN:
        value = text.strip(_XML_SPACE)
        if value not in ("true", "false"):
            raise _error(ErrorTag.INVALID_VALUE, f'"{text}" is not a boolean', path, node.name)
        return value == "true"
    if kind is ValueKind.DECIMAL:
        return canonical_decimal(text)
    if kind is ValueKind.EMPTY:
        if text.strip(_XML_SPACE):
            raise _error(ErrorTag.INVALID_VALUE, "a leaf of type empty has no value", path, node.name)
        return [None]
    if kind is ValueKind.IDENTITYREF:
        value = text.strip(_XML_SPACE)
        prefix, _, local = value.rpartition(":")
        namespace = element.nsmap.get(prefix or None)
        if prefix and namespace is None:
            raise _error(
                ErrorTag.INVALID_VALUE, f'unknown prefix "{prefix}" in identityref "{value}"',
                path, node.name,
            )
        if namespace is None:
            return local
        module = schema.module_by_namespace.get(namespace)
        if module is None:
            raise _error(
                ErrorTag.INVALID_VALUE, f'identityref "{value}" names an unknown module',
                path, node.name,
            )
        return f"{module}:{local}"
    return text


_DECIMAL64 = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def canonical_decimal(text: str) -> str:
    """RFC 7950 §9.3.2 canonical decimal64 ("04.20" -> "4.2", "3" -> "3.0"); text that is
    not a decimal number is returned unchanged for libyang to reject."""
    if not _DECIMAL64.fullmatch(text.strip()):
        return text
    out = format(Decimal(text.strip()).normalize(), "f")
    return out if "." in out else out + ".0"


def _predicate_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_nested_operations(element: etree._Element, op: EditOperation,
                             path: ErrorPath) -> None:
    """Inside a deleted/removed subtree only delete/remove may be asked for."""
    for descendant in element.iterdescendants():
        if not _is_element(descendant):
            continue
        nested = descendant.get(OPERATION_ATTRIBUTE)
        if nested is not None and nested not in (EditOperation.DELETE, EditOperation.REMOVE):
            name = etree.QName(descendant).localname
            raise _error(
                ErrorTag.BAD_ATTRIBUTE, f'operation "{nested}" on "{name}" inside a "{op}" subtree',
                path, name, bad_attribute="operation",
            )


def _find_entry(entries: list[JsonObject], keys: dict[str, Any]) -> int | None:
    """Index of the entry with these key values, or None."""
    if len(keys) == 1:
        ((name, value),) = keys.items()
        try:
            return [entry.get(name) for entry in entries].index(value)
        except ValueError:
            return None
    for i, entry in enumerate(entries):
        if all(entry.get(name) == value for name, value in keys.items()):
            return i
    return None


class _EditWalker:
    """One pass over a ``<config>`` element. With ``collect_errors`` the walk goes on past a
    failing node (continue-on-error) and records every error."""

    def __init__(self, schema: SchemaTree, collect_errors: bool) -> None:
        self.schema = schema
        self.collect_errors = collect_errors
        self.errors: list[RpcError] = []

    def apply_children(
        self,
        target: JsonObject,
        parent: SchemaNode,
        element: etree._Element,
        inherited: EditOperation,
        path: ErrorPath,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        """Apply each child element of ``element`` (``skip``: Clark tags to leave out)."""
        by_tag = parent.children_by_tag
        # a plain leaf merged or replaced (most elements of an edit) is set here; anything
        # else — another operation, attributes, child elements, a choice, an unknown or
        # config false node — goes through apply_node, which would do the same for it
        plain_leaf_ops = inherited is EditOperation.MERGE or inherited is EditOperation.REPLACE
        for child in element.iterchildren(etree.Element):   # elements only, filtered in C
            tag = child.tag
            if tag in skip:  # list keys: they identified the entry already
                continue
            try:
                node = by_tag.get(tag)
                if (plain_leaf_ops and node is not None and node.kind is NodeKind.LEAF
                        and node.config and not node.cases and not len(child)
                        and not child.keys()):
                    target[node.json_name] = json_value(
                        node, child, self.schema, (path, node, parent.module or None, None, ""))
                    continue
                self.apply_node(target, parent, child, tag, inherited, path)
            except RpcError as exc:
                if not self.collect_errors:
                    raise
                self.errors.append(exc)

    def resolve(self, parent: SchemaNode, tag: str, path: ErrorPath) -> SchemaNode:
        node = parent.children_by_tag.get(tag)
        if node is not None and node.config and node.kind is not NodeKind.ANY:
            return node  # the usual case: one lookup by Clark tag, nothing to report
        path = error_path_text(path)
        namespace, name = _split_tag(tag)
        if namespace not in self.schema.module_by_namespace:
            raise _error(
                ErrorTag.UNKNOWN_NAMESPACE,
                f'namespace "{namespace}" of element "{name}" is not a known YANG module',
                f"{path}/{name}", name, bad_namespace=namespace,
            )
        node = parent.child(namespace, name)
        if node is None:
            where = f'"{parent.name}"' if parent.name else "the top level"
            raise _error(
                ErrorTag.UNKNOWN_ELEMENT, f'"{name}" is not a data node under {where}',
                f"{path}/{name}", name,
            )
        if not node.config:
            raise _error(
                ErrorTag.BAD_ELEMENT,
                f'"{name}" is config false (state data) and cannot be edited',
                f"{path}/{node.path_step(parent.module or None)}", name,
            )
        if node.kind is NodeKind.ANY:
            raise _error(
                ErrorTag.OPERATION_NOT_SUPPORTED, f'editing anydata "{name}" is not supported',
                f"{path}/{node.path_step(parent.module or None)}", name,
            )
        return node

    def operation(
        self, element: etree._Element, node: SchemaNode, inherited: EditOperation,
        path: ErrorPath,
    ) -> EditOperation:
        if not element.keys():  # no attribute at all (most elements of an edit)
            return inherited
        own = None
        for attribute, value in element.attrib.items():
            if attribute == OPERATION_ATTRIBUTE:
                own = _ATTRIBUTE_OPERATIONS.get(value)
                if own is None:
                    raise _error(
                        ErrorTag.BAD_ATTRIBUTE, f'"{value}" is not an edit operation', path,
                        node.name, bad_attribute="operation",
                    )
            else:
                raise _error(
                    ErrorTag.UNKNOWN_ATTRIBUTE,
                    f'attribute "{etree.QName(attribute).localname}" is not supported here',
                    path, node.name, bad_attribute=etree.QName(attribute).localname,
                )
        return inherited if own is None else own

    def apply_node(
        self,
        target: JsonObject,
        parent: SchemaNode,
        element: etree._Element,
        tag: str,
        inherited: EditOperation,
        parent_path: ErrorPath,
    ) -> None:
        node = self.resolve(parent, tag, parent_path)
        path = (parent_path, node, parent.module or None, None, "")
        if node.kind is NodeKind.LIST:
            self.apply_list(target, node, element, inherited, path)
        else:
            op = self.operation(element, node, inherited, path)
            if node.kind is NodeKind.CONTAINER:
                self.apply_container(target, node, element, op, path)
            elif node.kind is NodeKind.LEAF:
                self.apply_leaf(target, node, element, op, path)
            else:
                self.apply_leaf_list(target, node, element, op, path)
        if node.cases and node.json_name in target:
            for sibling in parent.children.values():
                if sibling.json_name in target and node.excludes(sibling):
                    del target[sibling.json_name]

    def apply_container(
        self,
        target: JsonObject,
        node: SchemaNode,
        element: etree._Element,
        op: EditOperation,
        path: ErrorPath,
    ) -> None:
        key = node.json_name
        exists = key in target
        if op is EditOperation.DELETE and not exists:
            raise _error(ErrorTag.DATA_MISSING, f'"{node.name}" does not exist', path, node.name)
        if op in (EditOperation.DELETE, EditOperation.REMOVE):
            _check_nested_operations(element, op, path)
            target.pop(key, None)
            return
        if op is EditOperation.CREATE and exists:
            raise _error(ErrorTag.DATA_EXISTS, f'"{node.name}" already exists', path, node.name)
        text = element.text
        if text and text.strip():
            raise _error(ErrorTag.BAD_ELEMENT, f'container "{node.name}" has a text value',
                         path, node.name)
        fresh = op in (EditOperation.REPLACE, EditOperation.CREATE) or not exists
        content: JsonObject = {} if fresh else dict(target[key])  # copy on write
        self.apply_children(content, node, element, op, path)
        if content or (node.presence and (op is not EditOperation.NONE or exists)):
            target[key] = content
        else:  # an empty non-presence container is no data (RFC 7950 §7.5.1)
            target.pop(key, None)

    def apply_list(
        self,
        target: JsonObject,
        node: SchemaNode,
        element: etree._Element,
        inherited: EditOperation,
        path: ErrorPath,
    ) -> None:
        keys: dict[str, Any] = {}
        for key_node, key_tag in node.key_nodes:
            key_element = next(element.iterchildren(key_tag), None)
            if key_element is None:
                raise _error(
                    ErrorTag.MISSING_ELEMENT,
                    f'list "{node.name}" entry without its key "{key_node.name}"', path,
                    key_node.name,
                )
            keys[key_node.json_name] = json_value(key_node, key_element, self.schema,
                                                  (path, None, None, None, f"/{key_node.name}"))
        path = (path, None, None, keys, "")
        op = self.operation(element, node, inherited, path)
        entries: list[JsonObject] = list(target.get(node.json_name, ()))  # copy on write
        index = _find_entry(entries, keys)
        if op is EditOperation.DELETE and index is None:
            raise _error(ErrorTag.DATA_MISSING, f'"{node.name}" entry does not exist', path,
                         node.name)
        if op in (EditOperation.DELETE, EditOperation.REMOVE):
            _check_nested_operations(element, op, path)
            if index is not None:
                del entries[index]
                if entries:
                    target[node.json_name] = entries
                else:
                    target.pop(node.json_name, None)
            return
        if op is EditOperation.CREATE and index is not None:
            raise _error(ErrorTag.DATA_EXISTS, f'"{node.name}" entry already exists', path,
                         node.name)
        fresh = op in (EditOperation.REPLACE, EditOperation.CREATE) or index is None
        entry: JsonObject = dict(keys) if fresh else dict(entries[index])  # type: ignore[index]
        self.apply_children(entry, node, element, op, path, skip=node.key_tags)
        if op is EditOperation.NONE and index is None and len(entry) == len(keys):
            return
        if index is None:
            entries.append(entry)
        else:
            entries[index] = entry
        target[node.json_name] = entries

    def apply_leaf(
        self,
        target: JsonObject,
        node: SchemaNode,
        element: etree._Element,
        op: EditOperation,
        path: ErrorPath,
    ) -> None:
        key = node.json_name
        exists = key in target
        if op is EditOperation.DELETE and not exists:
            raise _error(ErrorTag.DATA_MISSING, f'"{node.name}" does not exist', path, node.name)
        if op in (EditOperation.DELETE, EditOperation.REMOVE):
            target.pop(key, None)
            return
        if _has_child_element(element):
            raise _error(ErrorTag.BAD_ELEMENT, f'leaf "{node.name}" has child elements', path,
                         node.name)
        if op is EditOperation.CREATE and exists:
            raise _error(ErrorTag.DATA_EXISTS, f'"{node.name}" already exists', path, node.name)
        value = json_value(node, element, self.schema, path)
        if op is not EditOperation.NONE:
            target[key] = value

    def apply_leaf_list(
        self,
        target: JsonObject,
        node: SchemaNode,
        element: etree._Element,
        op: EditOperation,
        path: ErrorPath,
    ) -> None:
        key = node.json_name
        if _has_child_element(element):
            raise _error(ErrorTag.BAD_ELEMENT, f'leaf-list "{node.name}" has child elements',
                         path, node.name)
        value = json_value(node, element, self.schema, path)
        path = (path, None, None, None, f"[.='{_predicate_value(value)}']")
        values: list[Any] = list(target.get(key, ()))  # copy on write
        exists = value in values
        if op is EditOperation.DELETE and not exists:
            raise _error(ErrorTag.DATA_MISSING, f'"{node.name}" value does not exist', path,
                         node.name)
        if op in (EditOperation.DELETE, EditOperation.REMOVE):
            if exists:
                values.remove(value)
                if values:
                    target[key] = values
                else:
                    target.pop(key, None)
            return
        if op is EditOperation.CREATE and exists:
            raise _error(ErrorTag.DATA_EXISTS, f'"{node.name}" value already exists', path,
                         node.name)
        if op is not EditOperation.NONE and not exists:
            values.append(value)
            target[key] = values


def check_config_element(config: etree._Element) -> None:
    """``malformed-message`` unless ``config`` is a NETCONF ``<config>`` element."""
    if not _is_element(config) or config.tag != f"{{{NETCONF_BASE_NS}}}config":
        raise RpcError(
            tag=ErrorTag.MALFORMED_MESSAGE,
            message="the edit must be a <config> element in the NETCONF base namespace",
            type=ErrorType.RPC,
        )
    if (config.text or "").strip():
        raise RpcError(
            tag=ErrorTag.MALFORMED_MESSAGE,
            message="<config> holds text outside any data node",
            type=ErrorType.RPC,
        )


def apply_edit(
    running: JsonObject,
    config: etree._Element,
    schema: SchemaTree,
    default_operation: DefaultOperation = DefaultOperation.MERGE,
    *,
    collect_errors: bool = False,
) -> tuple[JsonObject, list[RpcError]]:
    """Apply the ``<config>`` element to the RFC 7951 JSON tree ``running``.

    Returns the candidate tree and the errors found. ``running`` is never modified: the
    walk copies on write, so the candidate shares every untouched subtree with it (treat
    both as immutable afterwards). Without ``collect_errors`` the first error is raised;
    with it (continue-on-error) the walk skips each failing node, goes on, and returns every
    error found (an empty list: success).
    """
    check_config_element(config)
    walker = _EditWalker(schema, collect_errors)
    # RFC 6241: default-operation replace replaces the whole datastore with <config>.
    candidate: JsonObject = {} if default_operation is DefaultOperation.REPLACE else dict(running)
    walker.apply_children(
        candidate, schema.root, config, _DEFAULT_TO_EDIT[default_operation], ""
    )
    return candidate, walker.errors
