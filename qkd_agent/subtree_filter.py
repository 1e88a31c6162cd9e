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
from collections.abc import Callable, Sequence

from lxml import etree

#: Key leaf names of a list data element (by namespace and local name), () for non-lists.
KeyLookup = Callable[[etree._Element], Sequence[str]]


def _no_keys(_: etree._Element) -> Sequence[str]:
    return ()


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _names_match(filter_node: etree._Element, data_node: etree._Element) -> bool:
    f_qname, d_qname = etree.QName(filter_node), etree.QName(data_node)
    if f_qname.localname != d_qname.localname:
        return False
    return not f_qname.namespace or f_qname.namespace == d_qname.namespace


def _qualified(value: str, element: etree._Element) -> tuple[str | None, str]:
    """(namespace, local) when ``value`` is a prefixed name resolvable on ``element``."""
    prefix, sep, local = value.partition(":")
    if sep and prefix and local and prefix in element.nsmap:
        return element.nsmap[prefix], local
    return None, value


def _values_match(filter_node: etree._Element, data_node: etree._Element) -> bool:
    wanted = (filter_node.text or "").strip()
    actual = (data_node.text or "").strip()
    if wanted == actual:
        return True
    f_ns, f_local = _qualified(wanted, filter_node)
    d_ns, d_local = _qualified(actual, data_node)
    return f_ns is not None and (f_ns, f_local) == (d_ns, d_local)


def _is_content_match(node: etree._Element) -> bool:
    return not _elements(node) and bool((node.text or "").strip())


def _select(
    data_parent: etree._Element,
    filter_parent: etree._Element,
    full: set[etree._Element],
    partial: set[etree._Element],
) -> bool:
    """Mark what ``filter_parent``'s children select among ``data_parent``'s children.

    Returns False when a content match node fails (the parent is then not selected).
    ``full`` collects data nodes returned with their whole subtree, ``partial`` the nodes
    returned with only some descendants."""
    filters = _elements(filter_parent)
    data_children = _elements(data_parent)
    content = [f for f in filters if _is_content_match(f)]
    for f in content:
        if not any(_names_match(f, d) and _values_match(f, d) for d in data_children):
            return False
    others = [f for f in filters if not _is_content_match(f)]
    if not others:
        full.add(data_parent)
        return True
    selected = False
    for f in content:
        for d in data_children:
            if _names_match(f, d) and _values_match(f, d):
                full.add(d)
                selected = True
    for f in others:
        for d in data_children:
            if not _names_match(f, d):
                continue
            if not _elements(f):
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
    result = []
    for top in _elements(data):
        for f in _elements(filter_element):
            if not _names_match(f, top):
                continue
            if not _elements(f) and not (f.text or "").strip():
                full.add(top)
            elif _is_content_match(f):
                if _values_match(f, top):
                    full.add(top)
            else:
                top_full: set[etree._Element] = set()
                top_partial: set[etree._Element] = set()
                if _select(top, f, top_full, top_partial):
                    full.update(top_full)
                    partial.update(top_partial)
                    if top not in top_full:
                        partial.add(top)
        if top in full or top in partial:
            result.append(_copy_selected(top, full, partial, keys_of))
    return result
