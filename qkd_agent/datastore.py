"""The agent's running configuration datastore, validated by libyang on every change.

Pure: no sockets, no threads of its own. The running configuration is held as a validated
libyang data tree plus its canonical RFC 7951 JSON text. An ``<edit-config>`` is applied to a
JSON working copy (:mod:`qkd_agent.edit_operations`, RFC 6241 §7.2 semantics node by node),
the whole result is then parsed and validated strictly by libyang (types, ranges, patterns,
identityrefs, keys, must/when, leafref, mandatory, unique) and only then swapped in. Any
failure raises :class:`~qkd_agent.rpc_error.RpcError` and leaves the datastore unchanged.

Reads produce XML in the NETCONF base ``<data>`` element: ``get-config`` from the running
tree, ``get`` from the running tree merged with the operational (``config false``) data a
state provider supplies as RFC 7951 JSON; both filtered by an RFC 6241 subtree or XPath
filter. Listeners are told of every committed change with the old and new configuration.

See ``docs/datastore.md`` for the semantics and the error mapping.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import libyang
from lxml import etree

from qkd_agent.data_tree import DataTree
from qkd_agent.edit_operations import (
    DefaultOperation,
    ErrorOption,
    RpcErrors,
    TestOption,
    apply_edit,
)
from qkd_agent.libyang_errors import LibyangParseError, rpc_error_from_libyang
from qkd_agent.namespace_hoist import hoist_namespaces, module_prefixes, used_prefixes
from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError
from qkd_agent.schema_tree import NodeKind, SchemaNode, SchemaTree, build_schema_tree
from qkd_agent.serialised_data import SerialisedData
from qkd_agent.served_config import ServedConfig
from qkd_agent.snapshot_text import SnapshotText
from qkd_agent.state_merge import merge_state
from qkd_agent.subtree_filter import filter_subtree, prune_to_filter
from qkd_agent.tree_patch import (
    PatchNotApplicable,
    patch_tree,
    referencing_top_level_names,
    when_nodes,
)
from qkd_agent.xpath_filter import libyang_xpath
from qkd_agent.yang_context import module_namespace
from qkdn.errors import ConfigError
from qkdn.namespaces import NETCONF_BASE_NS

log = logging.getLogger(__name__)

#: ``callback(old, new)`` with the running configuration before and after a change.
ChangeListener = Callable[[dict[str, Any], dict[str, Any]], None]
#: ``check(old, new)`` before a validated change is committed; raising refuses the change.
CommitCheck = Callable[[dict[str, Any], dict[str, Any]], None]

_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
_DATA_TAG = f"{{{NETCONF_BASE_NS}}}data"


#: every option value → its enum member, by enum (a dict lookup instead of an Enum call)
_OPTION_VALUES: dict[type, dict[str, Any]] = {
    enum: {member.value: member for member in enum}
    for enum in (DefaultOperation, TestOption, ErrorOption)
}


def _option(enum: type, value: object, name: str) -> Any:
    member = _OPTION_VALUES[enum].get(value) if isinstance(value, str) else None
    if member is not None:
        return member
    try:
        return enum(str(value))
    except ValueError:
        raise RpcError(
            tag=ErrorTag.INVALID_VALUE,
            message=f'"{value}" is not a valid {name}',
            type=ErrorType.PROTOCOL,
            info={"bad-element": name},
        ) from None


def _data_element(xml_text: str) -> etree._Element:
    """Wrap libyang's XML printout of a forest into ``<data>``."""
    return etree.fromstring(
        f'<data xmlns="{NETCONF_BASE_NS}">{xml_text}</data>'.encode(), _XML_PARSER
    )


class Datastore:
    """The running configuration datastore of one agent.

    ``initial`` is RFC 7951 JSON of the running config (``{"etsi-qkd-sdn-node:qkd_node":
    {...}}``); it must validate (else :class:`qkdn.errors.ConfigError`). ``None`` starts
    empty: unconfigured, until a first edit creates ``qkd_node`` with its mandatory
    ``qkdn_id``. All methods are thread-safe (one internal lock); the usual caller is the
    agent's event loop.
    """

    def __init__(self, ctx: libyang.Context, initial: dict[str, Any] | None = None) -> None:
        self._ctx = ctx
        self._schema: SchemaTree = build_schema_tree(ctx)
        self._lock = threading.RLock()
        self._listeners: list[ChangeListener] = []
        self._commit_checks: list[CommitCheck] = []
        self._tree = DataTree(ctx, None)
        #: RFC 7951 JSON mirror of ``_tree``; never mutated (edits copy on write).
        self._running: dict[str, Any] = {}
        self._xml_cache: etree._Element | None = None
        self._xml_cache_prefixes: dict[str, str] = {}
        self._xml_text: str | None = None  #: libyang's XML of ``_tree``, once per commit
        #: what reads serve until the next commit (qkd_agent.served_config); never state
        self._served: ServedConfig | None = None
        #: module prefixes declared once on the <data> of a reply (qkd_agent.namespace_hoist)
        self._prefixes = module_prefixes((m.prefix(), module_namespace(m)) for m in ctx)
        self._all_prefixes = tuple({m.prefix() for m in ctx})
        #: top-level nodes with leafrefs: a tree holding one is never patched in place
        self._referencing = referencing_top_level_names(ctx)
        #: what a patch flags for re-validation below a parent it changed
        self._whens = when_nodes(ctx)
        self._running_text: str | None = None
        self._snapshot_text = SnapshotText()
        self._candidate_texts: dict[int, Any] | None = None
        if initial:
            try:
                self._tree = self._validated(initial)
            except RpcError as exc:
                raise ConfigError(f"initial configuration is invalid: {exc.message}"
                                  f" at {exc.path}") from exc
            self._running = json.loads(self._tree.print("json"))
            _, entry_texts = self._snapshot_text.text(self._running)
            self._snapshot_text.adopt(entry_texts)

    # ------------------------------------------------------------------ reads
    @property
    def schema(self) -> SchemaTree:
        return self._schema

    def running_json(self) -> dict[str, Any]:
        """The running configuration as RFC 7951 JSON (a fresh copy in libyang's canonical
        form, config only). The text is printed once per commit; each call parses it."""
        with self._lock:
            if self._running_text is None:
                self._running_text = self._tree.print("json")
            text = self._running_text
        return json.loads(text) if text else {}

    def running_snapshot(self) -> dict[str, Any]:
        """The running configuration as RFC 7951 JSON without any copy: the datastore's own
        immutable snapshot (the object listeners receive). Cheap enough for every ``<get>``;
        read it, never modify it."""
        with self._lock:
            return self._running

    def get_config(self, filter: etree._Element | None = None) -> etree._Element:
        """``<data>`` with the running configuration, filtered by the ``<filter>`` element
        (``type`` subtree, the default, or xpath with a ``select`` attribute)."""
        with self._lock:
            if filter is not None and _filter_type(filter) == "xpath":
                return self._xpath_data(self._tree, filter)
            data = self._filtered(self._cached_xml(), filter)
            return hoist_namespaces(data, self._xml_cache_prefixes, self._all_prefixes)

    def _cached_xml(self) -> etree._Element:
        """``<data>`` of the running tree, printed once per commit (lock held)."""
        if self._xml_cache is None:
            text = self._xml_print()
            self._xml_cache = _data_element(text)
            self._xml_cache_prefixes = used_prefixes(text, self._prefixes)
        return self._xml_cache

    def _xml_print(self) -> str:
        if self._xml_text is None:
            self._xml_text = self._tree.print("xml")
        return self._xml_text

    def _served_config(self) -> ServedConfig:
        """The running configuration prepared for serving, built once per commit (lock
        held). It has its own tree: the one :meth:`_cached_xml` returns is copied by the
        other reads and must keep exactly the declarations libyang printed."""
        if self._served is None:
            text = self._xml_print()
            self._served = ServedConfig(_data_element(text),
                                        used_prefixes(text, self._prefixes),
                                        self._all_prefixes)
        return self._served

    def _invalidate_reads(self) -> None:
        """Forget everything derived from the running tree (after a commit or a rebuild)."""
        self._xml_cache = None
        self._xml_text = None
        self._served = None
        self._running_text = None

    def get(
        self,
        filter: etree._Element | None = None,
        operational: dict[str, Any] | None = None,
    ) -> etree._Element:
        """``<data>`` with the running configuration merged with ``operational`` (RFC 7951
        JSON of ``config false`` data, keys included), then filtered like :meth:`get_config`.

        Operational data is parsed strictly against the model (unknown nodes and bad values
        are an ``operation-failed`` error: they are the agent's fault, not the client's)."""
        if not operational:
            return self.get_config(filter)
        if filter is not None and _filter_type(filter) == "xpath":
            state = self._state_tree(operational)
            with state:
                with self._lock:
                    merged = self._tree.duplicate()
                with merged:
                    merged.merge_from(state)
                    return self._xpath_data(merged, filter)
        state_xml, state_prefixes = self._state_xml(operational, filter)
        if filter is not None and not _selects_whole_subtrees(filter):
            # content matches and deeper selections may test configuration that decides
            # which state is selected: merge everything, then filter
            with self._lock:
                data = self.get_config()  # a private copy
                prefixes = {**self._xml_cache_prefixes, **state_prefixes}
            merge_state(data, state_xml, self._schema.root)
            return hoist_namespaces(self._filtered(data, filter, copy_all=False), prefixes,
                                    self._all_prefixes)
        with self._lock:
            # whole top-level subtrees (e.g. <qkd_node/>): copy just those, then merge the
            # state, pruned to the same filter above, into the copy
            data = self._filtered(self._cached_xml(), filter)
            prefixes = {**self._xml_cache_prefixes, **state_prefixes}
        merge_state(data, state_xml, self._schema.root)
        return hoist_namespaces(data, prefixes, self._all_prefixes)

    def get_serialised(
        self,
        filter: etree._Element | None = None,
        operational: dict[str, Any] | None = None,
    ) -> SerialisedData | None:
        """:meth:`get` (or :meth:`get_config` when ``operational`` is empty), serialised,
        when the read can be served from the per-commit cache: no filter, or a subtree
        filter of whole top-level subtrees (``<qkd_node/>``). The configuration then comes
        from a :class:`~qkd_agent.served_config.ServedConfig` (cached bytes; the live state
        merged in and taken out again) without copying any tree. None for every other read:
        call :meth:`get` / :meth:`get_config` instead (same content, built by copying)."""
        whole = filter is None or (_filter_type(filter) == "subtree"
                                   and _selects_whole_subtrees(filter))
        if not whole:
            return None
        state_xml, state_prefixes = (self._state_xml(operational, filter) if operational
                                     else (None, {}))
        with self._lock:
            served = self._served_config()
            body = served.serialise(served.select(filter), state_xml, state_prefixes,
                                    self._schema.root)
        return None if body is None else SerialisedData(body)

    def _state_tree(self, operational: dict[str, Any]) -> DataTree:
        """Operational data parsed strictly against the model (unknown nodes and bad values
        are an ``operation-failed`` error: they are the agent's fault, not the client's)."""
        try:
            return DataTree.parse(
                self._ctx, json.dumps(operational), config_only=False, validate=False
            )
        except LibyangParseError as exc:
            inner = rpc_error_from_libyang(exc)
            raise RpcError(
                tag=ErrorTag.OPERATION_FAILED,
                message=f"operational state does not match the model: {inner.message}",
                path=inner.path,
            ) from exc

    def _state_xml(self, operational: dict[str, Any], filter: etree._Element | None,
                   ) -> tuple[etree._Element, dict[str, str]]:
        """``<data>`` of the operational data (pruned to a subtree ``filter``) and the
        module prefixes its text declares."""
        with self._state_tree(operational) as state:
            state_text = state.print("xml")
        state_xml = _data_element(state_text)
        if filter is not None and _filter_type(filter) == "subtree":
            prune_to_filter(state_xml, filter, self._keys_of)
        return state_xml, used_prefixes(state_text, self._prefixes)

    # ----------------------------------------------------------------- writes
    def edit_config(
        self,
        config: etree._Element,
        *,
        default_operation: str = "merge",
        test_option: str = "test-then-set",
        error_option: str = "stop-on-error",
    ) -> None:
        """Apply an RFC 6241 ``<config>`` element atomically.

        ``test-then-set`` and ``set`` both validate the whole result before committing (an
        invalid running configuration is never stored); ``test-only`` validates and discards.
        Every ``error-option`` is all-or-nothing here: on any error nothing is applied.
        ``continue-on-error`` differs only in that the edit is walked to its end and every
        error found is reported (:class:`~qkd_agent.edit_operations.RpcErrors`).
        """
        default_op = _option(DefaultOperation, default_operation, "default-operation")
        test_opt = _option(TestOption, test_option, "test-option")
        error_opt = _option(ErrorOption, error_option, "error-option")
        with self._lock:
            candidate, errors = apply_edit(
                self._running, config, self._schema, default_op,
                collect_errors=error_opt is ErrorOption.CONTINUE_ON_ERROR,
            )
            if errors:
                raise RpcErrors.of(errors)
            if candidate == self._running:
                return  # nothing changes: the running configuration is valid already
            if test_opt is TestOption.TEST_ONLY:
                self._candidate_tree(candidate).free()
                return
            # in place only for plain trees with no commit check (a refused check must leave
            # the running tree as it was: the copy is thrown away instead)
            in_place = not self._commit_checks and \
                not self._referencing.intersection(candidate, self._running)
            new_tree = self._candidate_tree(candidate, in_place=in_place)
            try:
                for check in list(self._commit_checks):
                    check(self._running, candidate)
            except BaseException:
                new_tree.free()
                raise
            self._commit(new_tree, candidate)

    def validate(self, config: etree._Element | None = None) -> None:
        """RFC 6241 ``<validate>``: the running configuration (``None``) or a complete
        ``<config>`` element (as if it were the whole datastore), checked without storing."""
        with self._lock:
            if config is None:
                self._validated(self._running).free()
                return
            candidate, _ = apply_edit({}, config, self._schema, DefaultOperation.MERGE)
            self._validated(candidate).free()

    def add_listener(self, callback: ChangeListener) -> None:
        """Call ``callback(old, new)`` after every committed change (RFC 7951 JSON).

        ``old`` and ``new`` are the datastore's own immutable snapshots (shared, not copied,
        to keep commits cheap): a listener must only read them (``copy.deepcopy`` first to
        change anything). Called synchronously, under the datastore lock; an exception in
        a listener is logged and does not undo the change."""
        with self._lock:
            self._listeners.append(callback)

    def add_commit_check(self, check: CommitCheck) -> None:
        """Call ``check(old, new)`` (RFC 7951 JSON snapshots, read-only) for every edit that
        validated, before it is committed. An exception refuses the edit and leaves the
        datastore unchanged: an :class:`~qkd_agent.rpc_error.RpcError` reaches the client as
        it is. Lets a server whose configuration lives elsewhere (a database) write it there
        first, all or nothing."""
        with self._lock:
            self._commit_checks.append(check)

    def remove_listener(self, callback: ChangeListener) -> None:
        with self._lock:
            self._listeners.remove(callback)

    # -------------------------------------------------------------- internals
    def _candidate_tree(self, candidate: dict[str, Any], *, in_place: bool = False) -> DataTree:
        """The validated libyang tree of ``candidate``: the running tree patched with the
        edit's changes and validated as a whole, or (when a patch does not apply) the whole
        candidate parsed and validated.

        ``in_place`` patches the running tree itself (the commit then has no copy to make
        and no old tree to free: 2 of an edit's 8 ms at 50 links and 200 applications); if
        the patch or the validation fails, the running tree is rebuilt from its snapshot (a
        full parse, on the error path only). Otherwise a copy is patched."""
        if not self._tree.empty:
            work = self._tree if in_place else self._tree.duplicate()
            try:
                patch_tree(self._ctx, self._schema, work.first, self._running, candidate,
                           self._whens)
                work.validate()
            except PatchNotApplicable:
                self._discard(work)
            except LibyangParseError as exc:
                self._discard(work)
                raise rpc_error_from_libyang(exc) from exc
            except BaseException:
                self._discard(work)
                raise
            else:
                self._candidate_texts = None  # the entry text cache stays as it is
                return work
        return self._validated(candidate)

    def _discard(self, work: DataTree) -> None:
        """Drop a patched tree that will not be committed; a patched running tree is
        rebuilt from the running snapshot first."""
        if work is self._tree:
            text, _ = self._snapshot_text.text(self._running)
            self._tree = DataTree.parse(self._ctx, text)  # valid: it was the running tree
            self._invalidate_reads()
        work.free()

    def _validated(self, candidate: dict[str, Any]) -> DataTree:
        """The candidate parsed and validated as a whole by libyang (RpcError if invalid).
        Remembers the entry texts of the candidate for :meth:`_commit`."""
        text, self._candidate_texts = self._snapshot_text.text(candidate)
        try:
            return DataTree.parse(self._ctx, text)
        except LibyangParseError as exc:
            raise rpc_error_from_libyang(exc) from exc

    def _commit(self, new_tree: DataTree, candidate: dict[str, Any]) -> None:
        old = self._running
        old_tree, self._tree = self._tree, new_tree
        self._running = candidate
        self._invalidate_reads()
        if old_tree is not new_tree:
            old_tree.free()
        if self._candidate_texts is not None:
            self._snapshot_text.adopt(self._candidate_texts)
        for listener in list(self._listeners):
            try:
                listener(old, candidate)
            except Exception:  # a listener's bug must not undo or block a committed change
                log.exception("datastore change listener %r failed", listener)

    def _keys_of(self, element: etree._Element) -> tuple[str, ...]:
        chain = []
        node: etree._Element | None = element
        while node is not None and node.tag != _DATA_TAG:
            chain.append(etree.QName(node))
            node = node.getparent()
        schema: SchemaNode | None = self._schema.root
        for qname in reversed(chain):
            schema = schema.child(qname.namespace or "", qname.localname) if schema else None
        if schema is None or schema.kind is not NodeKind.LIST:
            return ()
        return schema.keys

    def _filtered(
        self, data: etree._Element, filter: etree._Element | None, copy_all: bool = True
    ) -> etree._Element:
        if filter is None:
            return copy.deepcopy(data) if copy_all else data
        kind = _filter_type(filter)
        if kind != "subtree":
            raise RpcError(
                tag=ErrorTag.BAD_ATTRIBUTE,
                message=f'filter type "{kind}" is not supported',
                type=ErrorType.PROTOCOL,
                info={"bad-attribute": "type", "bad-element": "filter"},
            )
        out = etree.Element(_DATA_TAG, nsmap={None: NETCONF_BASE_NS})
        for node in filter_subtree(data, filter, self._keys_of):
            out.append(node)
        return out

    def _xpath_data(self, tree: DataTree, filter: etree._Element) -> etree._Element:
        select = filter.get("select") or filter.get(f"{{{NETCONF_BASE_NS}}}select")
        if not select:
            raise RpcError(
                tag=ErrorTag.MISSING_ATTRIBUTE,
                message='an XPath filter needs a "select" attribute',
                type=ErrorType.PROTOCOL,
                info={"bad-attribute": "select", "bad-element": "filter"},
            )
        xpath = libyang_xpath(select, filter.nsmap, self._schema.module_by_namespace)
        try:
            with tree.select_xpath(xpath) as selected:
                return _data_element(selected.print("xml"))
        except LibyangParseError as exc:
            raise RpcError(
                tag=ErrorTag.INVALID_VALUE,
                message=f"XPath filter rejected: {exc}",
                type=ErrorType.PROTOCOL,
                info={"bad-attribute": "select", "bad-element": "filter"},
            ) from exc


def _selects_whole_subtrees(filter: etree._Element) -> bool:
    """True if every top-level node of a subtree filter is an empty selection node."""
    children = [el for el in filter if isinstance(el.tag, str)]
    return all(len(el) == 0 and not (el.text or "").strip() and not el.attrib
               for el in children)


def _filter_type(filter: etree._Element) -> str:
    return filter.get("type") or filter.get(f"{{{NETCONF_BASE_NS}}}type") or "subtree"
