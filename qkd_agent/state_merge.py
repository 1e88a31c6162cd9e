"""Merge operational (``config false``) XML into a copy of the configuration XML for ``<get>``.

Both trees come from libyang printouts of validated/strictly parsed data, so they follow the
schema; nodes are matched by namespace and name, list entries also by their key values,
leaf-list entries by value. Matching containers and entries are merged recursively, a leaf
takes the state value, anything else is moved over from the state tree. This avoids
duplicating and re-printing the whole libyang tree on every ``<get>``.
"""

from __future__ import annotations

from lxml import etree

from qkd_agent.schema_tree import NodeKind, SchemaNode


def _first(parent: etree._Element, tag: str) -> etree._Element | None:
    return next(parent.iterchildren(tag), None)


def _key_values(entry: etree._Element, schema: SchemaNode) -> tuple[str | None, ...]:
    values = []
    for key in schema.keys:
        leaf = _first(entry, f"{{{schema.namespace}}}{key}")
        values.append(None if leaf is None else leaf.text)
    return tuple(values)


def merge_state(target: etree._Element, source: etree._Element, parent: SchemaNode) -> None:
    """Merge the children of ``source`` into ``target``, both instances of ``parent``.

    ``source`` is consumed (its elements are moved into ``target``). A leaf present in both
    takes the state value (the state provider reports what is in force). The work is
    proportional to the state tree, plus one key index per list that state data touches.
    """
    list_indexes: dict[str, dict[tuple[str | None, ...], etree._Element]] = {}
    by_tag = parent.children_by_tag
    for child in list(source):
        tag = child.tag
        if not isinstance(tag, str):
            continue
        schema = by_tag.get(tag)
        if schema is None or not schema.config:
            # config false: never in the configuration, nothing to merge with
            target.append(child)
        elif schema.kind is NodeKind.LIST:
            index = list_indexes.get(tag)
            if index is None:
                index = {_key_values(e, schema): e for e in target.iterchildren(tag)}
                list_indexes[tag] = index
            keys = _key_values(child, schema)
            existing = index.get(keys)
            if existing is None:
                target.append(child)  # moves it out of source
                index[keys] = child
            else:
                merge_state(existing, child, schema)
        elif schema.kind is NodeKind.CONTAINER:
            existing = _first(target, tag)
            if existing is None:
                target.append(child)
            else:
                merge_state(existing, child, schema)
        elif schema.kind is NodeKind.LEAF_LIST:
            value = (child.text or "").strip()
            if not any((e.text or "").strip() == value for e in target.iterchildren(tag)):
                target.append(child)
        elif schema.name not in parent.keys:  # leaf (key leaves are equal by matching)
            existing = _first(target, tag)
            if existing is None:
                target.append(child)
            else:
                target.replace(existing, child)
