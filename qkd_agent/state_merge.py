"""Merge operational (``config false``) XML into a copy of the configuration XML for ``<get>``.

Both trees come from libyang printouts of validated/strictly parsed data, so they follow the
schema; nodes are matched by namespace and name, list entries also by their key values,
leaf-list entries by value. Matching containers and entries are merged recursively, a leaf
takes the state value, anything else is moved over from the state tree. This avoids
duplicating and re-printing the whole libyang tree on every ``<get>``.

With a :class:`MergeJournal` the merge can be undone (:meth:`MergeJournal.undo`): a ``<get>``
merges the state into the datastore's cached configuration tree itself, serialises it and
takes the state out again, instead of copying the whole tree first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from qkd_agent.schema_tree import NodeKind, SchemaNode


@dataclass
class MergeJournal:
    """What a :func:`merge_state` changed in its target, in order, so that it can be undone.

    Each step is ``(parent, added, replaced)``: ``added`` became a child of ``parent``, in
    the place of ``replaced`` (a leaf the state value overrides) or appended (None)."""

    steps: list[tuple[etree._Element, etree._Element, etree._Element | None]] = \
        field(default_factory=list)
    #: key indexes of the target's list entries, by (parent element, list tag); they stay
    #: valid as long as the target's configuration does (the undo restores it), so the
    #: owner of a long-lived target may keep them from one merge to the next
    key_indexes: dict[tuple[etree._Element, str], dict[tuple[str | None, ...], etree._Element]] \
        = field(default_factory=dict)

    @property
    def only_appends_to(self) -> etree._Element | None:
        """The one element every step appended a child to, if the merge did nothing else
        (the state added new children to one node only); None otherwise."""
        if not self.steps:
            return None
        parent = self.steps[0][0]
        for step_parent, _, replaced in self.steps:
            if step_parent is not parent or replaced is not None:
                return None
        return parent

    def undo(self) -> None:
        """Restore the target as it was before the merge (the state elements are detached)."""
        for parent, added, replaced in reversed(self.steps):
            if replaced is None:
                parent.remove(added)
            else:
                parent.replace(added, replaced)
        self.steps.clear()


def _first(parent: etree._Element, tag: str) -> etree._Element | None:
    return next(parent.iterchildren(tag), None)


def _key_values(entry: etree._Element, schema: SchemaNode) -> tuple[str | None, ...]:
    values = []
    for key in schema.keys:
        leaf = _first(entry, f"{{{schema.namespace}}}{key}")
        values.append(None if leaf is None else leaf.text)
    return tuple(values)


def merge_state(target: etree._Element, source: etree._Element, parent: SchemaNode,
                journal: MergeJournal | None = None) -> None:
    """Merge the children of ``source`` into ``target``, both instances of ``parent``.

    ``source`` is consumed (its elements are moved into ``target``). A leaf present in both
    takes the state value (the state provider reports what is in force). The work is
    proportional to the state tree, plus one key index per list that state data touches.
    ``journal`` records every change made to ``target`` (for :meth:`MergeJournal.undo`).
    """
    steps = journal.steps if journal is not None else None
    list_indexes: dict[str, dict[tuple[str | None, ...], etree._Element]] = {}
    by_tag = parent.children_by_tag
    for child in list(source):
        tag = child.tag
        if not isinstance(tag, str):
            continue
        schema = by_tag.get(tag)
        if schema is None or not schema.config:
            # config false: never in the configuration, nothing to merge with
            _append(target, child, steps)
        elif schema.kind is NodeKind.LIST:
            index = list_indexes.get(tag)
            if index is None:
                index = _config_index(target, tag, schema, journal)
                list_indexes[tag] = index
            keys = _key_values(child, schema)
            existing = index.get(keys)
            if existing is None:
                _append(target, child, steps)  # moves it out of source
                index[keys] = child
            else:
                merge_state(existing, child, schema, journal)
        elif schema.kind is NodeKind.CONTAINER:
            existing = _first(target, tag)
            if existing is None:
                _append(target, child, steps)
            else:
                merge_state(existing, child, schema, journal)
        elif schema.kind is NodeKind.LEAF_LIST:
            value = (child.text or "").strip()
            if not any((e.text or "").strip() == value for e in target.iterchildren(tag)):
                _append(target, child, steps)
        elif schema.name not in parent.keys:  # leaf (key leaves are equal by matching)
            existing = _first(target, tag)
            if existing is None:
                _append(target, child, steps)
            else:
                target.replace(existing, child)
                if steps is not None:
                    steps.append((target, child, existing))


def _config_index(target: etree._Element, tag: str, schema: SchemaNode,
                  journal: MergeJournal | None) -> dict[tuple[str | None, ...], etree._Element]:
    """The entries of list ``tag`` under ``target`` by key values: a private copy (entries
    the merge appends are added to it), of the journal's kept index when there is one."""
    if journal is None:
        return {_key_values(e, schema): e for e in target.iterchildren(tag)}
    kept = journal.key_indexes.get((target, tag))
    if kept is None:
        kept = {_key_values(e, schema): e for e in target.iterchildren(tag)}
        journal.key_indexes[(target, tag)] = kept
    return dict(kept)


def _append(target: etree._Element, child: etree._Element,
            steps: list[tuple[etree._Element, etree._Element, etree._Element | None]] | None,
            ) -> None:
    target.append(child)
    if steps is not None:
        steps.append((target, child, None))
