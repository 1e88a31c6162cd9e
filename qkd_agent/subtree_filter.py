"""RFC 6241 §6 subtree filtering of an XML data tree.

The filter's elements are classified as in §6.2: *content match* nodes (leaves with a text
value), *selection* nodes (empty leaves) and *containment* nodes (elements with children).
At each sibling set every content match node must match a data sibling (same namespace,
name and value) for the parent to be selected; then if the sibling set holds only content
match nodes the whole parent is returned, otherwise the selection nodes pick whole subtrees
and the containment nodes recurse. Namespaces are compared by URI, never by prefix; a filter
element with no namespace (``xmlns=""``) matches that name in any namespace (§6.2.1).
Values that are qualified names (identityrefs) compare by namespace URI and local name.
List keys of a selected list entry are always returned, so that entries stay identifiable.

Example:
    >>> data = etree.fromstring('<data xmlns="urn:x"><a><b>1</b><c>2</c></a></data>')
    >>> flt = etree.fromstring('<filter xmlns="urn:x"><a><c/></a></filter>')
    >>> etree.tostring(filter_subtree(data, flt)[0])
    b'<a xmlns="urn:x"><c>2</c></a>'
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence

from lxml import etree

#: Key leaf names of a list data element (by namespace and local name), () for non-lists.
KeyLookup = Callable[[etree._Element], Sequence[str]]


def _no_keys(_: etree._Element) -> Sequence[str]:
    return ()


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


class _FilterNode:
    """One filter element, classified once (RFC 6241 §6.2)."""

    __slots__ = ("children", "element", "local", "tag", "value")

    def __init__(self, element: etree._Element) -> None:
        qname = etree.QName(element)
        self.element = element
        # Clark tag to match exactly, or None: no namespace matches any namespace (§6.2.1)
        self.tag = element.tag if qname.namespace else None
        self.local = qname.localname
        self.children = [_FilterNode(child) for child in _elements(element)]
        text = (element.text or "").strip()
        self.value = text if text and not self.children else None

    @property
    def is_content_match(self) -> bool:
        return self.value is not None

    @property
    def is_selection(self) -> bool:
        return self.value is None and not self.children

    def matches_in(self, parent: etree._Element) -> list[etree._Element]:
        """The children of ``parent`` with this node's name (and namespace)."""
        if self.tag is not None:
            return list(parent.iterchildren(self.tag))
        return [
            child for child in parent.iterchildren()
            if isinstance(child.tag, str) and etree.QName(child).localname == self.local
        ]

    def names(self, data_node: etree._Element) -> bool:
        """True when ``data_node`` has this node's name (and namespace, unless wildcard)."""
        if self.tag is not None:
            return data_node.tag == self.tag
        return etree.QName(data_node).localname == self.local

    def value_matches(self, data_node: etree._Element) -> bool:
        assert self.value is not None
        actual = (data_node.text or "").strip()
        if self.value == actual:
            return True
        f_ns, f_local = _qualified(self.value, self.element)
        d_ns, d_local = _qualified(actual, data_node)
        return f_ns is not None and (f_ns, f_local) == (d_ns, d_local)


def _qualified(value: str, element: etree._Element) -> tuple[str | None, str]:
    """(namespace, local) when ``value`` is a prefixed name resolvable on ``element``."""
    prefix, sep, local = value.partition(":")
    if sep and prefix and local and prefix in element.nsmap:
        return element.nsmap[prefix], local
    return None, value


def _select(
    data_parent: etree._Element,
    filter_parent: _FilterNode,
    full: set[etree._Element],
    partial: set[etree._Element],
) -> bool:
    """Mark what ``filter_parent``'s children select among ``data_parent``'s children.

    Returns False when a content match node fails (the parent is then not selected).
    ``full`` collects data nodes returned with their whole subtree, ``partial`` the nodes
    returned with only some descendants."""
    content = [f for f in filter_parent.children if f.is_content_match]
    content_hits: list[etree._Element] = []
    for f in content:
        hits = [d for d in f.matches_in(data_parent) if f.value_matches(d)]
        if not hits:
            return False
        content_hits.extend(hits)
    others = [f for f in filter_parent.children if not f.is_content_match]
    if not others:
        full.add(data_parent)
        return True
    full.update(content_hits)
    selected = bool(content_hits)
    for f in others:
        for d in f.matches_in(data_parent):
            if f.is_selection:
                full.add(d)
                selected = True
                continue
            child_full: set[etree._Element] = set()
            child_partial: set[etree._Element] = set()
            if _select(d, f, child_full, child_partial):
                full.update(child_full)
                partial.update(child_partial)
                if d not in child_full:
                    partial.add(d)
                selected = True
    return selected


def _copy_selected(
    node: etree._Element,
    full: set[etree._Element],
    partial: set[etree._Element],
    keys_of: KeyLookup,
) -> etree._Element:
    if node in full:
        return copy.deepcopy(node)
    out = etree.Element(node.tag, nsmap=node.nsmap)
    out.text = None
    keys = set(keys_of(node))
    for child in _elements(node):
        if child in full or child in partial:
            out.append(_copy_selected(child, full, partial, keys_of))
        elif etree.QName(child).localname in keys:
            out.append(copy.deepcopy(child))
    return out


def filter_subtree(
    data: etree._Element, filter_element: etree._Element, keys_of: KeyLookup = _no_keys
) -> list[etree._Element]:
    """The top-level data nodes selected by the subtree filter ``filter_element``.

    ``data`` is a container element (such as ``<data>``) whose children are the top-level
    data nodes; ``filter_element`` is the ``<filter>`` element (its children are the filter
    roots). An empty filter selects nothing (§6.4.2). The data tree is not modified; the
    result is made of copies, with key leaves of selected list entries included.
    """
    full: set[etree._Element] = set()
    partial: set[etree._Element] = set()
    roots = [_FilterNode(f) for f in _elements(filter_element)]
    for f in roots:
        for top in f.matches_in(data):
            if f.is_selection:
                full.add(top)
            elif f.is_content_match:
                if f.value_matches(top):
                    full.add(top)
            else:
                top_full: set[etree._Element] = set()
                top_partial: set[etree._Element] = set()
                if _select(top, f, top_full, top_partial):
                    full.update(top_full)
                    partial.update(top_partial)
                    if top not in top_full:
                        partial.add(top)
    out = []
    for top in _elements(data):
        if top in full:
            out.append(_copy_selected(top, full, partial, keys_of))
        elif top in partial:
            selected = _copy_selected(top, full, partial, keys_of)
            _redeclare_value_prefixes(top, selected)
            out.append(selected)
    return out


def selected_top_level(data: etree._Element, filter_element: etree._Element,
                       ) -> list[etree._Element]:
    """The top-level data nodes of ``data`` themselves (not copies), in document order, that
    a filter made of selection nodes only (``<qkd_node xmlns="…"/>``) selects whole.
    ValueError for any other filter (use :func:`filter_subtree`)."""
    roots = [_FilterNode(f) for f in _elements(filter_element)]
    if not all(f.is_selection for f in roots):
        raise ValueError("the filter does not select whole top-level subtrees only")
    return [top for top in _elements(data) if any(f.names(top) for f in roots)]


_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _redeclare_value_prefixes(original: etree._Element, selected: etree._Element) -> None:
    """Declare again the prefixes that identityref values use in their text.

    Appending a copied subtree makes lxml drop namespace declarations that an in-scope
    default namespace makes redundant for element names (``<restoration_type
    xmlns:qkdn-acc="urn:...access">qkdn-acc:MANUAL</...>`` inside ``<qkd_access
    xmlns="urn:...access">``), which leaves the value's prefix undeclared."""
    wanted: set[str] = set()
    for element in selected.iter():
        text = element.text
        if text and len(element) == 0 and ":" in text:
            prefix = text.split(":", 1)[0]
            if _NCNAME.fullmatch(prefix) and prefix not in wanted and prefix not in element.nsmap:
                wanted.add(prefix)
    if not wanted:
        return
    found: dict[str, str] = {}
    for element in original.iter():
        text = element.text
        if text and len(element) == 0 and ":" in text:
            prefix = text.split(":", 1)[0]
            if prefix in wanted and prefix not in found and prefix in element.nsmap:
                found[prefix] = element.nsmap[prefix]
    if found:
        etree.cleanup_namespaces(selected, top_nsmap=found, keep_ns_prefixes=list(found))


def _prune(data_parent: etree._Element, filter_parent: _FilterNode, keys_of: KeyLookup) -> None:
    filters = filter_parent.children
    if not filters or all(f.is_content_match for f in filters):
        return  # the whole parent may be returned
    keys = set(keys_of(data_parent))
    for child in _elements(data_parent):
        matching = [f for f in filters if f.names(child)]
        if not matching:
            if etree.QName(child).localname not in keys:
                data_parent.remove(child)
        elif len(matching) == 1 and matching[0].children and not matching[0].is_content_match:
            _prune(child, matching[0], keys_of)


def prune_to_filter(
    data: etree._Element, filter_element: etree._Element, keys_of: KeyLookup = _no_keys
) -> None:
    """Remove from ``data`` (in place) every node the subtree filter cannot return, keeping
    list keys, so that merging more data into it and then filtering gives the same result
    as filtering the whole. Used to avoid merging operational state nobody asked for.

    A node can only be returned if a filter node at its level names it — unless the level
    holds content match nodes only (then the whole parent may be returned, §6.2.5); a
    node named by exactly one containment node is pruned by that node recursively."""
    _prune(data, _FilterNode(filter_element), keys_of)
