"""The NETCONF operations the agent serves: one small function per operation.

Each function takes the operation element (the child of ``<rpc>``) and the :class:`RpcCall`
it belongs to, checks its parameters, acts on the shared :class:`ServerState` and returns the
reply content: an element to place in ``<rpc-reply>`` (``<data>``), a ``<data>`` already
serialised (:class:`~qkd_agent.serialised_data.SerialisedData`, ``get``/``get-config``
served from the datastore's per-commit cache) or ``None`` for ``<ok/>``.
Any failure is an :class:`~qkd_agent.rpc_error.RpcError`; building the reply message and
sending it is the session's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from lxml import etree

from qkd_agent.candidate import CandidateStore
from qkd_agent.capabilities import SchemaModule, find_schema
from qkd_agent.datastore_lock import DatastoreName, LockTable
from qkd_agent.notifications import DEFAULT_STREAM, NotificationHub, Subscription
from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError
from qkd_agent.serialised_data import SerialisedData
from qkdn.namespaces import NETCONF_BASE_NS, NETCONF_MONITORING_NS, NETCONF_NOTIFICATION_NS


class DatastoreAccess(Protocol):
    """What the operations need from :class:`qkd_agent.datastore.Datastore`."""

    def get_config(self, filter: etree._Element | None) -> etree._Element: ...

    def get(self, filter: etree._Element | None, operational: dict) -> etree._Element: ...

    def edit_config(
        self,
        config: etree._Element,
        *,
        default_operation: str = "merge",
        test_option: str = "test-then-set",
        error_option: str = "stop-on-error",
    ) -> None: ...

    def validate(self, config: etree._Element | None = None) -> None: ...

    def running_json(self) -> dict: ...


class SessionHandle(Protocol):
    """What one session exposes to the others (kill-session)."""

    session_id: int

    def kill(self) -> None: ...


@dataclass
class ServerState:
    """Everything the sessions of one agent share. Used from the agent's event loop only."""

    datastore: DatastoreAccess
    modules: tuple[SchemaModule, ...]
    state_provider: Callable[[], dict] | None = None
    locks: LockTable = field(default_factory=LockTable)
    hub: NotificationHub = field(default_factory=NotificationHub)
    sessions: dict[int, SessionHandle] = field(default_factory=dict)
    candidate: CandidateStore | None = None  # None: no :candidate capability
    #: operations beyond the base ones (e.g. a YANG module's RPCs), by (namespace, name);
    #: looked up before :data:`OPERATIONS`
    extra_operations: Mapping[tuple[str, str], Operation] = field(default_factory=dict)
    #: ``rpc_observer(operation, seconds, ok)`` after every answered <rpc> (metrics)
    rpc_observer: Callable[[str, float, bool], None] | None = None

    def operational_state(self) -> dict:
        return self.state_provider() if self.state_provider else {}

    def end_session(self, session_id: int) -> None:
        """Release what an ended session held: its locks (a candidate it had locked loses
        its uncommitted changes, RFC 6241 §8.3.5.2) and its subscription."""
        if self.candidate is not None and self.locks.holder(DatastoreName.CANDIDATE) == session_id:
            self.candidate.discard()
        self.locks.release_all(session_id)
        self.hub.unsubscribe(session_id)
        self.sessions.pop(session_id, None)

    def store(self, name: DatastoreName) -> DatastoreAccess:
        """The datastore to read for ``name``."""
        if name is DatastoreName.CANDIDATE and self.candidate is not None:
            return self.candidate.view()  # type: ignore[return-value]
        return self.datastore


@dataclass
class RpcCall:
    """One ``<rpc>`` being served: who asked, and what the session must do afterwards."""

    session_id: int
    server: ServerState
    deliver_notification: Callable[[bytes], None]
    may_write: bool = True
    username: str = ""
    close_after_reply: bool = False

    def require_write(self, operation: str) -> None:
        """``access-denied`` for a session of a read-only user."""
        if not self.may_write:
            raise RpcError(ErrorTag.ACCESS_DENIED,
                           f"user {self.username!r} is read-only and may not {operation}",
                           type=ErrorType.APPLICATION)


#: an operation returns the reply content: an element, serialised ``<data>``, or None (``<ok/>``)
Operation = Callable[[etree._Element, RpcCall], "etree._Element | SerialisedData | None"]

_BASE = f"{{{NETCONF_BASE_NS}}}"
_RUNNING_TAG = f"{_BASE}{DatastoreName.RUNNING}"
_NOTIF = f"{{{NETCONF_NOTIFICATION_NS}}}"
_MON = f"{{{NETCONF_MONITORING_NS}}}"

EDIT_DEFAULT_OPERATIONS = ("merge", "replace", "none")
EDIT_TEST_OPTIONS = ("test-then-set", "set", "test-only")
EDIT_ERROR_OPTIONS = ("stop-on-error", "continue-on-error", "rollback-on-error")


# --------------------------------------------------------------------------- parameter helpers


def _children(op: etree._Element) -> list[etree._Element]:
    return [c for c in op if isinstance(c.tag, str)]


def _check_known_children(op: etree._Element, ns: str, allowed: tuple[str, ...]) -> None:
    _known_params(op, ns, allowed)


def _known_params(op: etree._Element, ns: str, allowed: tuple[str, ...]
                  ) -> dict[str, etree._Element]:
    """The parameters of ``op`` by local name (the first of each), in one pass over its
    child elements; ``unknown-element`` for the first child that is not one of ``allowed``
    in namespace ``ns``."""
    params: dict[str, etree._Element] = {}
    prefix = f"{{{ns}}}"
    for child in op.iterchildren(etree.Element):
        tag = child.tag
        local = tag[len(prefix):] if tag.startswith(prefix) else None
        if local is None or local not in allowed:
            q = etree.QName(child)
            raise RpcError(
                ErrorTag.UNKNOWN_ELEMENT,
                f"unexpected parameter <{q.localname}> in <{etree.QName(op).localname}>",
                type=ErrorType.PROTOCOL,
                info={"bad-element": q.localname},
            )
        params.setdefault(local, child)
    return params


def _missing(op: etree._Element, name: str) -> RpcError:
    return RpcError(
        ErrorTag.MISSING_ELEMENT,
        f"<{etree.QName(op).localname}> needs <{name}>",
        type=ErrorType.PROTOCOL,
        info={"bad-element": name},
    )


def _param(op: etree._Element, ns: str, name: str, required: bool = False) -> etree._Element | None:
    found = next(op.iterchildren(f"{{{ns}}}{name}"), None)   # op.find() without ElementPath
    if found is None and required:
        raise _missing(op, name)
    return found


def _text_choice(op: etree._Element, name: str, choices: tuple[str, ...], default: str) -> str:
    return _choice(_param(op, NETCONF_BASE_NS, name), name, choices, default)


def _choice(elem: etree._Element | None, name: str, choices: tuple[str, ...],
            default: str) -> str:
    """The text of parameter ``elem`` (named ``name``), one of ``choices``; ``default`` when
    the parameter is absent (None)."""
    if elem is None:
        return default
    value = (elem.text or "").strip()
    if value not in choices:
        raise RpcError(
            ErrorTag.INVALID_VALUE,
            f"<{name}> must be one of {', '.join(choices)}, not {value!r}",
            type=ErrorType.PROTOCOL,
            info={"bad-element": name},
        )
    return value


def _datastore(op: etree._Element, name: str, call: RpcCall,
               given: etree._Element | None = None) -> DatastoreName:
    """The datastore named in ``<target>`` / ``<source>`` (``given``: that element, when
    the caller has found it already): running, or candidate when the agent offers it."""
    holder = _param(op, NETCONF_BASE_NS, name, required=True) if given is None else given
    assert holder is not None
    chosen = _children(holder)
    if len(chosen) == 1 and chosen[0].tag == _RUNNING_TAG:   # the usual case
        return DatastoreName.RUNNING
    if len(chosen) != 1:
        raise RpcError(
            ErrorTag.MISSING_ELEMENT if not chosen else ErrorTag.BAD_ELEMENT,
            f"<{name}> must name exactly one datastore",
            type=ErrorType.PROTOCOL,
            info={"bad-element": name},
        )
    q = etree.QName(chosen[0])
    if q.namespace == NETCONF_BASE_NS and q.localname == DatastoreName.RUNNING:
        return DatastoreName.RUNNING
    if (q.namespace == NETCONF_BASE_NS and q.localname == DatastoreName.CANDIDATE
            and call.server.candidate is not None):
        return DatastoreName.CANDIDATE
    if q.namespace == NETCONF_BASE_NS and q.localname in ("candidate", "startup", "url", "config"):
        raise RpcError(
            ErrorTag.OPERATION_NOT_SUPPORTED,
            f"<{q.localname}> as {name} is not supported by this agent",
            type=ErrorType.PROTOCOL,
            info={"bad-element": q.localname},
        )
    raise RpcError(
        ErrorTag.UNKNOWN_ELEMENT,
        f"unknown datastore <{q.localname}>",
        type=ErrorType.PROTOCOL,
        info={"bad-element": q.localname},
    )


def _filter(op: etree._Element) -> etree._Element | None:
    """The ``<filter>`` element of get / get-config: subtree (default) or xpath (RFC 6241
    §8.9, with a ``select`` attribute); the datastore applies it."""
    flt = _param(op, NETCONF_BASE_NS, "filter")
    if flt is None:
        return None
    kind = flt.get("type") or flt.get(_BASE + "type") or "subtree"
    if kind not in ("subtree", "xpath"):
        raise RpcError(
            ErrorTag.BAD_ATTRIBUTE,
            f"filter type {kind!r} is not supported; use subtree or xpath",
            type=ErrorType.PROTOCOL,
            info={"bad-attribute": "type", "bad-element": "filter"},
        )
    return flt


# --------------------------------------------------------------------------- operations


def get(op: etree._Element, call: RpcCall) -> etree._Element | SerialisedData:
    """RFC 6241 §7.7: running config and operational state (live: asked for at every
    ``<get>``). Served as bytes when the datastore offers ``get_serialised``."""
    _check_known_children(op, NETCONF_BASE_NS, ("filter",))
    flt = _filter(op)
    store = call.server.datastore
    state = call.server.operational_state()
    serialised = getattr(store, "get_serialised", None)
    reply = serialised(flt, state) if serialised is not None else None
    return reply if reply is not None else store.get(flt, state)


def get_config(op: etree._Element, call: RpcCall) -> etree._Element | SerialisedData:
    """RFC 6241 §7.1 from running or candidate."""
    _check_known_children(op, NETCONF_BASE_NS, ("source", "filter"))
    source = _datastore(op, "source", call)
    store = call.server.store(source)
    flt = _filter(op)
    serialised = getattr(store, "get_serialised", None)
    reply = serialised(flt, None) if serialised is not None else None
    return reply if reply is not None else store.get_config(flt)


def edit_config(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §7.2 on running or candidate; atomic (all or nothing) whatever the
    error-option."""
    params = _known_params(
        op, NETCONF_BASE_NS,
        ("target", "default-operation", "test-option", "error-option", "config", "url"),
    )
    target = _datastore(op, "target", call, params.get("target"))
    default_operation = _choice(params.get("default-operation"), "default-operation",
                                EDIT_DEFAULT_OPERATIONS, "merge")
    test_option = _choice(params.get("test-option"), "test-option", EDIT_TEST_OPTIONS,
                          "test-then-set")
    error_option = _choice(params.get("error-option"), "error-option", EDIT_ERROR_OPTIONS,
                           "stop-on-error")
    if "url" in params:
        raise RpcError(
            ErrorTag.OPERATION_NOT_SUPPORTED, "<url> is not supported (no :url capability)",
            type=ErrorType.PROTOCOL, info={"bad-element": "url"},
        )
    config = params.get("config")
    if config is None:
        raise _missing(op, "config")
    call.require_write("edit-config")
    options = {"default_operation": default_operation, "test_option": test_option,
               "error_option": error_option}
    if test_option == "test-only":  # nothing changes: check against the current content
        call.server.store(target).edit_config(config, **options)
        return
    call.server.locks.check_writable(target, call.session_id)
    candidate = call.server.candidate
    if target is DatastoreName.CANDIDATE and candidate is not None:
        first_change = not candidate.modified
        try:
            candidate.for_edit().edit_config(config, **options)
        except Exception:
            if first_change:  # a failed edit leaves the candidate as it was: unmodified
                candidate.discard()
            raise
        return
    call.server.datastore.edit_config(config, **options)


def whole_replacement(config: etree._Element, running: dict,
                      namespaces: dict[str, str]) -> etree._Element:
    """An edit ``<config>`` (for default-operation replace) that makes a datastore holding
    ``running`` (RFC 7951 JSON; ``namespaces`` maps module name to namespace) equal to
    ``config``: its top-level nodes replace the present ones, and each top-level node that
    ``config`` lacks is removed."""
    edit = etree.fromstring(etree.tostring(config))
    present = {(etree.QName(c).namespace, etree.QName(c).localname) for c in _children(edit)}
    for member in running:
        module, _, name = member.partition(":")
        namespace = namespaces.get(module)
        if namespace is None or (namespace, name) in present:
            continue
        gone = etree.SubElement(edit, f"{{{namespace}}}{name}")
        gone.set(_BASE + "operation", "remove")
    return edit


def _replace_all(target: DatastoreName, config: etree._Element, call: RpcCall) -> None:
    """Make ``target`` hold exactly ``config`` (one atomic, validated edit)."""
    namespaces = {m.name: m.namespace for m in call.server.modules}
    candidate = call.server.candidate
    if target is DatastoreName.CANDIDATE and candidate is not None:
        first_change = not candidate.modified
        store = candidate.for_edit()
        try:
            store.edit_config(whole_replacement(config, store.running_json(), namespaces),
                              default_operation="replace")
        except Exception:
            if first_change:
                candidate.discard()
            raise
        return
    running = call.server.datastore
    running.edit_config(whole_replacement(config, running.running_json(), namespaces),
                        default_operation="replace")


def copy_config(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §7.3 between running, candidate and an inline ``<config>`` (the whole new
    content, applied atomically)."""
    _check_known_children(op, NETCONF_BASE_NS, ("target", "source"))
    target = _datastore(op, "target", call)
    source_elem = _param(op, NETCONF_BASE_NS, "source", required=True)
    assert source_elem is not None
    inline = source_elem.find(_BASE + "config")
    source = None if inline is not None else _datastore(op, "source", call)
    call.require_write("copy-config")
    call.server.locks.check_writable(target, call.session_id)
    if source is target:
        return
    candidate = call.server.candidate
    if source is DatastoreName.RUNNING and target is DatastoreName.CANDIDATE and candidate:
        candidate.discard()  # an unmodified candidate is running
        return
    if inline is None:  # candidate → running
        assert candidate is not None
        inline = candidate.config()
    _replace_all(target, inline, call)
    if target is DatastoreName.RUNNING and source is DatastoreName.CANDIDATE and candidate:
        candidate.discard()


def delete_config(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §7.4: neither running nor candidate can be deleted (no startup here)."""
    _check_known_children(op, NETCONF_BASE_NS, ("target",))
    target = _datastore(op, "target", call)
    raise RpcError(ErrorTag.OPERATION_FAILED, f"the {target} datastore cannot be deleted",
                   type=ErrorType.PROTOCOL, info={"bad-element": str(target)})


def commit(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §8.3.4.1: the candidate becomes running (atomically); no confirmed commit."""
    candidate = _require_candidate(op, call)  # without :candidate, whatever its content
    _check_known_children(op, NETCONF_BASE_NS, ())
    call.require_write("commit")
    call.server.locks.check_writable(DatastoreName.RUNNING, call.session_id)
    call.server.locks.check_writable(DatastoreName.CANDIDATE, call.session_id)
    if candidate.modified:
        _replace_all(DatastoreName.RUNNING, candidate.config(), call)
        candidate.discard()


def discard_changes(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §8.3.4.2: the candidate mirrors running again."""
    candidate = _require_candidate(op, call)  # without :candidate, whatever its content
    _check_known_children(op, NETCONF_BASE_NS, ())
    call.require_write("discard-changes")
    call.server.locks.check_writable(DatastoreName.CANDIDATE, call.session_id)
    candidate.discard()


def _require_candidate(op: etree._Element, call: RpcCall) -> CandidateStore:
    if call.server.candidate is None:
        raise RpcError(ErrorTag.OPERATION_NOT_SUPPORTED,
                       f"<{etree.QName(op).localname}> needs :candidate, not offered here",
                       type=ErrorType.PROTOCOL, info={"bad-element": etree.QName(op).localname})
    return call.server.candidate


def validate(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §8.6: validate running, candidate or an inline ``<config>``."""
    _check_known_children(op, NETCONF_BASE_NS, ("source",))
    source = _param(op, NETCONF_BASE_NS, "source", required=True)
    assert source is not None
    inline = source.find(_BASE + "config")
    if inline is not None:
        call.server.datastore.validate(inline)
        return
    call.server.store(_datastore(op, "source", call)).validate(None)


def lock(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §7.5; a modified candidate cannot be locked (§8.3.5.1)."""
    _check_known_children(op, NETCONF_BASE_NS, ("target",))
    target = _datastore(op, "target", call)
    call.require_write("lock")
    candidate = call.server.candidate
    if (target is DatastoreName.CANDIDATE and candidate is not None and candidate.modified
            and call.server.locks.holder(target) is None):
        raise RpcError(ErrorTag.LOCK_DENIED,
                       "the candidate has uncommitted changes; commit or discard them first",
                       type=ErrorType.PROTOCOL, info={"session-id": "0"})
    call.server.locks.lock(target, call.session_id)


def unlock(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §7.6."""
    _check_known_children(op, NETCONF_BASE_NS, ("target",))
    target = _datastore(op, "target", call)
    call.require_write("unlock")
    call.server.locks.unlock(target, call.session_id)


def close_session(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §7.8: reply ``<ok/>``, then end the session (locks are released)."""
    _check_known_children(op, NETCONF_BASE_NS, ())
    call.close_after_reply = True


def kill_session(op: etree._Element, call: RpcCall) -> None:
    """RFC 6241 §7.9: end another session and release its locks."""
    _check_known_children(op, NETCONF_BASE_NS, ("session-id",))
    call.require_write("kill-session")
    elem = _param(op, NETCONF_BASE_NS, "session-id", required=True)
    assert elem is not None
    text = (elem.text or "").strip()
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise RpcError(ErrorTag.INVALID_VALUE, f"bad session-id {text!r}",
                       type=ErrorType.PROTOCOL, info={"bad-element": "session-id"})
    target_id = int(text)
    if target_id == call.session_id:
        raise RpcError(ErrorTag.INVALID_VALUE, "use close-session to end your own session",
                       type=ErrorType.PROTOCOL, info={"bad-element": "session-id"})
    target = call.server.sessions.get(target_id)
    if target is None:
        raise RpcError(ErrorTag.INVALID_VALUE, f"no session {target_id}",
                       type=ErrorType.PROTOCOL, info={"bad-element": "session-id"})
    target.kill()
    call.server.end_session(target_id)


def get_schema(op: etree._Element, call: RpcCall) -> etree._Element:
    """RFC 6022 §3.1: the text of one module the agent advertises."""
    _check_known_children(op, NETCONF_MONITORING_NS, ("identifier", "version", "format"))
    ident = _param(op, NETCONF_MONITORING_NS, "identifier", required=True)
    assert ident is not None
    identifier = (ident.text or "").strip()
    version_elem = _param(op, NETCONF_MONITORING_NS, "version")
    version = (version_elem.text or "").strip() if version_elem is not None else None
    format_elem = _param(op, NETCONF_MONITORING_NS, "format")
    if format_elem is not None:
        fmt = (format_elem.text or "").strip().split(":")[-1]
        if fmt != "yang":
            raise RpcError(ErrorTag.INVALID_VALUE, f"schema format {fmt!r} is not offered; use yang",
                           type=ErrorType.APPLICATION, info={"bad-element": "format"})
    found = find_schema(call.server.modules, identifier, version)
    if not found:
        raise RpcError(ErrorTag.INVALID_VALUE, f"no schema {identifier!r}"
                       + (f" revision {version}" if version else ""),
                       type=ErrorType.PROTOCOL, info={"bad-element": "identifier"})
    if len(found) > 1:
        raise RpcError(ErrorTag.OPERATION_FAILED, f"several revisions of {identifier!r}; give <version>",
                       type=ErrorType.PROTOCOL, app_tag="data-not-unique")
    data = etree.Element(_MON + "data", nsmap={None: NETCONF_MONITORING_NS})
    data.text = found[0].text
    return data


def create_subscription(op: etree._Element, call: RpcCall) -> None:
    """RFC 5277 §2.1.1 on the NETCONF stream; no replay (startTime is refused)."""
    _check_known_children(op, NETCONF_NOTIFICATION_NS, ("stream", "filter", "startTime", "stopTime"))
    stream = _param(op, NETCONF_NOTIFICATION_NS, "stream")
    name = (stream.text or "").strip() if stream is not None else DEFAULT_STREAM
    if name != DEFAULT_STREAM:
        raise RpcError(ErrorTag.INVALID_VALUE, f"no stream {name!r}; the only stream is {DEFAULT_STREAM}",
                       type=ErrorType.APPLICATION, info={"bad-element": "stream"})
    if _param(op, NETCONF_NOTIFICATION_NS, "startTime") is not None:
        raise RpcError(ErrorTag.OPERATION_NOT_SUPPORTED, "replay is not supported (no startTime)",
                       type=ErrorType.PROTOCOL, info={"bad-element": "startTime"})
    if _param(op, NETCONF_NOTIFICATION_NS, "stopTime") is not None:
        raise RpcError(ErrorTag.MISSING_ELEMENT, "stopTime needs startTime (replay)",
                       type=ErrorType.PROTOCOL, info={"bad-element": "startTime"})
    flt = _param(op, NETCONF_NOTIFICATION_NS, "filter")
    if flt is not None and flt.get("type", "subtree") != "subtree":
        raise RpcError(ErrorTag.OPERATION_NOT_SUPPORTED, "only subtree filters are supported",
                       type=ErrorType.PROTOCOL, info={"bad-attribute": "type", "bad-element": "filter"})
    if call.server.hub.is_subscribed(call.session_id):
        raise RpcError(ErrorTag.IN_USE, "this session already has a subscription",
                       type=ErrorType.PROTOCOL)
    call.server.hub.subscribe(Subscription(call.session_id, call.deliver_notification, flt))


#: (namespace, local name) of each operation element → the function serving it.
OPERATIONS: dict[tuple[str, str], Operation] = {
    (NETCONF_BASE_NS, "get"): get,
    (NETCONF_BASE_NS, "get-config"): get_config,
    (NETCONF_BASE_NS, "edit-config"): edit_config,
    (NETCONF_BASE_NS, "copy-config"): copy_config,
    (NETCONF_BASE_NS, "delete-config"): delete_config,
    (NETCONF_BASE_NS, "commit"): commit,
    (NETCONF_BASE_NS, "discard-changes"): discard_changes,
    (NETCONF_BASE_NS, "validate"): validate,
    (NETCONF_BASE_NS, "lock"): lock,
    (NETCONF_BASE_NS, "unlock"): unlock,
    (NETCONF_BASE_NS, "close-session"): close_session,
    (NETCONF_BASE_NS, "kill-session"): kill_session,
    (NETCONF_MONITORING_NS, "get-schema"): get_schema,
    (NETCONF_NOTIFICATION_NS, "create-subscription"): create_subscription,
}


def find_operation(op: etree._Element,
                   extra: Mapping[tuple[str, str], Operation] | None = None) -> Operation:
    """The function for an operation element (``extra`` first, then the base operations);
    ``operation-not-supported`` if none."""
    tag = op.tag
    if tag[:1] == "{":   # Clark notation, split without building a QName
        namespace, _, local = tag[1:].partition("}")
        key = (namespace, local)
    else:
        key = ("", tag)
    func = (extra or {}).get(key) or OPERATIONS.get(key)
    if func is None:
        q = etree.QName(op)
        raise RpcError(
            ErrorTag.OPERATION_NOT_SUPPORTED,
            f"operation <{q.localname}> ({q.namespace or 'no namespace'}) is not supported",
            type=ErrorType.PROTOCOL,
            info={"bad-element": q.localname},
        )
    return func
