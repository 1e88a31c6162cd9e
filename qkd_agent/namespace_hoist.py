"""Namespace declarations of a reply moved to its top element.

libyang prints an identityref value with its module's prefix and declares that prefix on the
leaf itself (``<app_type xmlns:etsi-qkdn-types="urn:...">etsi-qkdn-types:CLIENT</app_type>``),
so a ``get`` of a node with hundreds of applications and links repeats the same declaration
hundreds of times: 13 % of a 170 kB reply, and every such declaration costs a client's XML
parser (ncclient parses each reply twice with lxml) more than the element it sits on.
:func:`hoist_namespaces` declares the YANG modules' prefixes once on the top element and
drops the repeated declarations below it. Prefixes are kept even where only text uses them
(identityref values are QNames in text, which namespace clean-ups cannot see).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lxml import etree


def module_prefixes(modules: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{prefix: namespace}`` of ``(prefix, namespace)`` pairs; a prefix that two modules
    share is left out (its declarations then stay where libyang put them)."""
    seen: dict[str, str] = {}
    clashing: set[str] = set()
    for prefix, namespace in modules:
        if prefix in seen and seen[prefix] != namespace:
            clashing.add(prefix)
        seen.setdefault(prefix, namespace)
    return {p: ns for p, ns in seen.items() if p not in clashing}


def used_prefixes(xml_text: str, prefixes: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``prefixes`` that ``xml_text`` declares (cheap substring test)."""
    return {p: ns for p, ns in prefixes.items() if f'xmlns:{p}="' in xml_text}


def hoist_namespaces(data: etree._Element, prefixes: Mapping[str, str],
                     keep: Iterable[str] = ()) -> etree._Element:
    """Declare ``prefixes`` on each child of ``data`` (the top-level nodes, e.g. ``qkd_node``)
    and remove the same declarations below them (in place); returns ``data``.

    Not on ``data`` itself: a client that moves a top-level node into an ``<edit-config>``
    keeps the declarations its identityref values need. ``keep`` names every other prefix
    that text may use (e.g. all module prefixes): the clean-up removes declarations that no
    element or attribute uses unless their prefix is in ``prefixes`` or ``keep``."""
    if prefixes:
        top = dict(prefixes)
        keep = [*prefixes, *keep]
        for child in data:
            if isinstance(child.tag, str):
                etree.cleanup_namespaces(child, top_nsmap=top, keep_ns_prefixes=keep)
    return data
