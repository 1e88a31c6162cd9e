"""The running configuration as ``<get>`` and ``<get-config>`` serve it, prepared once per
commit.

A reply of the whole ``qkd_node`` (50 links, 200 applications: ~3,800 elements, 148 kB) used
to cost the agent a deep copy of the configuration tree, the state merged into the copy, a
namespace clean-up of the copy, its serialisation and finally freeing it: ~4 ms of CPU per
``<get>``, although the configuration part only changes with a commit. :class:`ServedConfig`
keeps, for one committed configuration:

* its ``<data>`` tree with the module prefixes declared once per top-level node
  (:mod:`qkd_agent.namespace_hoist`), done once instead of on every reply;
* the serialised bytes of each top-level node, made at the first read that needs them.

A read then costs (:meth:`serialise`):

* top-level node without state: its cached bytes, no serialisation at all;
* state that only adds children to the top-level node itself (what a standalone agent
  reports: ``qkdn_status``): the cached bytes with the state children's bytes spliced in
  before the node's end tag;
* any other state (a node's per-link and per-application state): the state is merged into
  the cached tree with a :class:`~qkd_agent.state_merge.MergeJournal`, the node is
  serialised and the merge undone: no copy of the tree, nothing to free.

State is live: it is never cached. The owner (the datastore) drops its ``ServedConfig`` at
every commit and whenever its running tree is rebuilt, and calls it under its own lock (the
cached tree is modified while a merge is serialised).
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from qkd_agent.namespace_hoist import hoist_namespaces
from qkd_agent.schema_tree import SchemaNode
from qkd_agent.state_merge import MergeJournal, merge_state
from qkd_agent.subtree_filter import selected_top_level

EMPTY_DATA = b"<data/>"


class ServedConfig:
    """One committed configuration, ready to be served (not thread-safe: the owner's lock).

    ``data`` is the ``<data>`` element of the configuration (its children the top-level
    nodes); it is adopted, not copied, and hoisted with ``prefixes`` ({prefix: namespace}
    the configuration's text uses) and ``keep`` (every other module prefix)."""

    def __init__(self, data: etree._Element, prefixes: Mapping[str, str],
                 keep: tuple[str, ...] = ()) -> None:
        self._keep = keep
        self._prefixes = dict(prefixes)
        self._data = hoist_namespaces(data, self._prefixes, keep)
        self._bytes: dict[etree._Element, bytes] = {}
        #: list key indexes of the cached tree, kept from one merge to the next
        self._key_indexes: dict = {}

    @property
    def data(self) -> etree._Element:
        """The hoisted ``<data>`` tree; read it, never keep or modify it."""
        return self._data

    def select(self, filter_element: etree._Element | None) -> list[etree._Element]:
        """The top-level nodes a filter selects whole (None: all of them), in document order.
        The filter must select whole subtrees only (empty selection nodes)."""
        tops = [child for child in self._data if isinstance(child.tag, str)]
        if filter_element is None:
            return tops
        return selected_top_level(self._data, filter_element)

    def node_bytes(self, top: etree._Element) -> bytes:
        """The serialisation of a top-level node, made once per commit."""
        cached = self._bytes.get(top)
        if cached is None:
            cached = self._bytes[top] = etree.tostring(top)
        return cached

    def serialise(
        self,
        tops: list[etree._Element],
        state: etree._Element | None,
        state_prefixes: Mapping[str, str],
        schema_root: SchemaNode,
    ) -> bytes | None:
        """``<data>`` with ``tops`` (from :meth:`select`) merged with the operational
        ``state`` (a ``<data>`` element of ``config false`` data, consumed; None for none)
        as UTF-8 bytes without an XML declaration. State top-level nodes that have no
        configuration counterpart are added after the configuration (as
        :func:`~qkd_agent.state_merge.merge_state` would). None when a top-level node name
        repeats (a top-level list): the caller then merges the general way."""
        state_list = [] if state is None else [c for c in state if isinstance(c.tag, str)]
        if len({t.tag for t in tops}) < len(tops) or \
                len({s.tag for s in state_list}) < len(state_list):
            return None
        if state is not None:
            self._declare(state_prefixes)
            hoist_namespaces(state, self._prefixes, self._keep)
        state_tops = {child.tag: child for child in state_list}
        parts: list[bytes | memoryview] = [b"<data>"]
        for top in tops:
            own_state = state_tops.pop(top.tag, None)
            if own_state is None:
                parts.append(self.node_bytes(top))
            else:
                parts.extend(self._with_state(top, own_state, schema_root))
        parts.extend(etree.tostring(rest) for rest in state_tops.values())
        if len(parts) == 1:
            return EMPTY_DATA
        parts.append(b"</data>")
        return b"".join(parts)  # the reply's one copy of the configuration bytes

    def _with_state(self, top: etree._Element, state_top: etree._Element,
                    schema_root: SchemaNode) -> list[bytes | memoryview]:
        """The pieces of ``top``'s serialisation with ``state_top`` merged in."""
        schema = schema_root.children_by_tag.get(top.tag)
        if schema is None:  # not in the model: cannot happen for validated data
            return [self.node_bytes(top)]
        cached = self.node_bytes(top)  # before the merge: the configuration alone
        journal = MergeJournal(key_indexes=self._key_indexes)
        try:
            merge_state(top, state_top, schema, journal)
            if journal.only_appends_to is top and not cached.endswith(b"/>"):
                return self._spliced(top, [added for _, added, _ in journal.steps])
            return [etree.tostring(top)]
        finally:
            journal.undo()

    def _spliced(self, top: etree._Element,
                 added: list[etree._Element]) -> list[bytes | memoryview]:
        """The cached bytes of ``top`` with the serialised ``added`` children (appended to
        ``top`` by the merge) inserted before its end tag, as pieces. The children are serialised in a
        shallow clone of ``top`` (same namespace declarations), so that they carry no
        declaration the full serialisation would not have."""
        cached = self.node_bytes(top)
        holder = etree.Element(top.tag, nsmap=top.nsmap)
        for child in added:
            holder.append(child)  # the journal takes it out of ``holder`` on undo
        try:
            text = etree.tostring(holder)
        finally:
            for child in added:
                top.append(child)  # back where the journal expects it
        children = text[text.index(b">") + 1: text.rindex(b"</")]
        end = cached.rindex(b"</")
        whole = memoryview(cached)  # slices without copies: joined once by serialise()
        return [whole[:end], children, whole[end:]]

    def _declare(self, prefixes: Mapping[str, str]) -> None:
        """Declare on every top-level node the prefixes state values need that the
        configuration did not declare yet (identityref values are QNames in text). The
        cached bytes then change: they are made again."""
        missing = {p: ns for p, ns in prefixes.items() if self._prefixes.get(p) != ns}
        if not missing:
            return
        self._prefixes.update(missing)
        hoist_namespaces(self._data, self._prefixes, self._keep)
        self._bytes.clear()
