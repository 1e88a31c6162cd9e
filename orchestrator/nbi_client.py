"""NETCONF client of the controller's north-bound interface (ncclient).

Two sessions per orchestrator: :class:`NbiClient` for requests (one at a time, behind a lock;
a broken session is dropped and reopened by the next request) and :class:`NotificationListener`
subscribed to the ``NETCONF`` stream in its own thread (reconnects with back-off). NETCONF
``<rpc-error>`` replies are translated to the orchestrator's errors here, in one place
(:func:`translate_rpc_error`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from lxml import etree

from orchestrator.errors import (
    Conflict,
    ControllerRpcError,
    ControllerUnavailable,
    FieldError,
    Forbidden,
    InvalidRequest,
    NotFound,
    NotImplementedByController,
    OrchestratorError,
)
from qkdn.namespaces import NETCONF_BASE_NS

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0


@dataclass(frozen=True)
class NbiEndpoint:
    """Where the controller's NETCONF north-bound server listens, and how to log in."""

    host: str
    port: int
    username: str
    password: str
    timeout_s: float = 10.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NbiEndpoint:
        """From ``endpoints.json`` ``controller.nbi`` (``host``, ``port``, ``username``,
        ``password``)."""
        try:
            return cls(str(data["host"]), int(data["port"]), str(data["username"]),
                       str(data["password"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ControllerUnavailable(f"malformed north-bound endpoint: {exc}") from exc


def _connect(endpoint: NbiEndpoint) -> Any:
    from qkdn.netconf_client import connect

    try:
        return connect(endpoint.host, endpoint.port, endpoint.username, endpoint.password,
                       timeout=endpoint.timeout_s)
    except Exception as exc:
        raise ControllerUnavailable(
            f"cannot reach the controller's NETCONF interface at "
            f"{endpoint.host}:{endpoint.port}: {type(exc).__name__}: {exc}") from exc


#: rpc-error tag → the orchestrator error. Bodies reach the controller only after the API's
#: own schema checks, so a value the controller still refuses (a reference to an entry that
#: does not exist, a ``must`` condition against the stored data, a session limit) conflicts
#: with the network's current state: 409. Malformed-message tags mean our payload or the
#: controller's model is wrong: 502.
_TAG_ERRORS: dict[str, type[OrchestratorError]] = {
    "data-exists": Conflict,
    "lock-denied": Conflict,
    "in-use": Conflict,
    "resource-denied": Conflict,
    "invalid-value": Conflict,
    "operation-failed": Conflict,
    "access-denied": Forbidden,
    "operation-not-supported": NotImplementedByController,
    "too-big": InvalidRequest,
}


def parse_rpc_error(element: etree._Element) -> ControllerRpcError:
    """The fields of one ``<rpc-error>`` element."""
    fields: dict[str, str] = {}
    for child in element:
        if isinstance(child.tag, str):
            text = child.text or ""
            if etree.QName(child).localname == "error-info":
                text = " ".join(
                    f"{etree.QName(c).localname}={c.text or ''}" for c in child
                    if isinstance(c.tag, str))
            fields[etree.QName(child).localname] = text.strip()
    return ControllerRpcError(
        tag=fields.get("error-tag", ""), message=fields.get("error-message", ""),
        path=fields.get("error-path", ""), app_tag=fields.get("error-app-tag", ""),
        type=fields.get("error-type", ""), extra={"info": fields.get("error-info", "")})


def translate_rpc_error(error: ControllerRpcError, *, missing: str = "conflict") -> OrchestratorError:
    """The REST-facing error for a controller ``<rpc-error>``.

    ``data-missing`` means the addressed entry does not exist (``missing="not-found"``: 404)
    or a reference to something that does not exist (``"conflict"``: 409 — e.g. a user whose
    SLA profile is unknown, or deleting an entry something still refers to)."""
    text = error.message or error.tag or "the controller refused the request"
    if error.app_tag:
        text = f"{text} ({error.app_tag})"
    if error.tag == "data-missing":
        return NotFound(text) if missing == "not-found" else Conflict(text)
    if error.app_tag == "unknown-svc-link":
        return NotFound(text)
    cls = _TAG_ERRORS.get(error.tag, ControllerUnavailable)
    if cls is InvalidRequest:
        return InvalidRequest(text, [FieldError(error.path or "", text)])
    if cls is Conflict and error.path:
        return Conflict(f"{text} (at {error.path})")
    if cls is ControllerUnavailable:
        return ControllerUnavailable(f"controller error {error.tag}: {text}")
    return cls(text)


def rpc_errors_in(reply: etree._Element) -> list[ControllerRpcError]:
    return [parse_rpc_error(e) for e in reply.iter(f"{{{NETCONF_BASE_NS}}}rpc-error")]


class NbiClient:
    """Request session to the controller. Thread-safe (requests are serialised)."""

    def __init__(self, endpoint: NbiEndpoint | Callable[[], NbiEndpoint]) -> None:
        self._endpoint = endpoint
        self._manager: Any = None
        self._lock = threading.Lock()
        self.requests = 0
        self.failures = 0

    def endpoint(self) -> NbiEndpoint:
        return self._endpoint() if callable(self._endpoint) else self._endpoint

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            try:
                manager.close_session()
            except Exception as exc:  # noqa: BLE001 - the session is being discarded anyway
                log.debug("closing a broken NETCONF session: %s", exc)

    def _session(self) -> Any:
        if self._manager is None or not self._manager.connected:
            self._drop()
            self._manager = _connect(self.endpoint())
        return self._manager

    def _call(self, element: etree._Element, *, missing: str = "conflict") -> etree._Element:
        """Send one operation element, return the ``<rpc-reply>`` element; rpc-errors are
        raised as orchestrator errors, transport failures as ControllerUnavailable."""
        with self._lock:
            self.requests += 1
            try:
                manager = self._session()
                reply = manager.dispatch(element)
                root = etree.fromstring(reply.xml.encode())
            except OrchestratorError:
                self.failures += 1
                raise
            except Exception as exc:
                errors = _ncclient_rpc_errors(exc)
                if errors:
                    raise translate_rpc_error(errors[0], missing=missing) from exc
                self.failures += 1
                self._drop()
                raise ControllerUnavailable(
                    f"NETCONF request to the controller failed: {type(exc).__name__}: "
                    f"{exc}") from exc
        errors = rpc_errors_in(root)
        if errors:
            raise translate_rpc_error(errors[0], missing=missing)
        return root

    # ------------------------------------------------------------------ operations

    def get(self, filter_element: etree._Element) -> list[etree._Element]:
        """``<get>`` with a subtree filter: the top-level elements of ``<data>``."""
        op = etree.Element(f"{{{NETCONF_BASE_NS}}}get")
        flt = etree.SubElement(op, f"{{{NETCONF_BASE_NS}}}filter", type="subtree")
        flt.append(filter_element)
        reply = self._call(op)
        data = reply.find(f"{{{NETCONF_BASE_NS}}}data")
        if data is None:
            raise ControllerUnavailable("the controller's <get> reply has no <data>")
        return [c for c in data if isinstance(c.tag, str)]

    def edit_config(self, config: etree._Element, *, missing: str = "conflict") -> None:
        """``<edit-config>`` of ``running`` (merge by default; operations in ``config``)."""
        op = etree.Element(f"{{{NETCONF_BASE_NS}}}edit-config")
        target = etree.SubElement(op, f"{{{NETCONF_BASE_NS}}}target")
        etree.SubElement(target, f"{{{NETCONF_BASE_NS}}}running")
        op.append(config)
        self._call(op, missing=missing)

    def rpc(self, element: etree._Element, *, missing: str = "not-found") -> etree._Element:
        """A module-defined RPC; the ``<rpc-reply>`` element."""
        return self._call(element, missing=missing)


def _ncclient_rpc_errors(exc: Exception) -> list[ControllerRpcError]:
    from ncclient.operations.rpc import RPCError

    if not isinstance(exc, RPCError):
        return []
    raw = getattr(exc, "errors", None) or [exc]
    out = []
    for err in raw:
        xml = getattr(err, "xml", None)
        if xml is not None and etree.iselement(xml):
            out.append(parse_rpc_error(xml))
        else:
            out.append(ControllerRpcError(tag=getattr(err, "tag", "") or "",
                                          message=getattr(err, "message", "") or "",
                                          path=getattr(err, "path", "") or "",
                                          app_tag=getattr(err, "app_tag", "") or ""))
    return out


class NotificationListener:
    """Subscribes to the controller's ``NETCONF`` stream and hands every ``<notification>``
    element to ``on_notification``; reconnects with exponential back-off. ``connected``
    tells whether a subscription is live. A context manager."""

    def __init__(self, endpoint: NbiEndpoint | Callable[[], NbiEndpoint],
                 on_notification: Callable[[etree._Element], None],
                 on_state: Callable[[bool, str], None] | None = None) -> None:
        self._endpoint = endpoint
        self._on_notification = on_notification
        self._on_state = on_state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nbi-notifications", daemon=True)
        self.connected = False
        self.connects = 0

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set_state(self, connected: bool, why: str) -> None:
        if connected != self.connected:
            log.info("north-bound notifications %s (%s)",
                     "subscribed" if connected else "lost", why)
        self.connected = connected
        if self._on_state is not None:
            self._on_state(connected, why)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            manager = None
            try:
                endpoint = self._endpoint() if callable(self._endpoint) else self._endpoint
                manager = _connect(endpoint)
                manager.create_subscription()
                self.connects += 1
                failures = 0
                self._set_state(True, "subscribed")
                while not self._stop.is_set() and manager.connected:
                    note = manager.take_notification(block=True, timeout=0.2)
                    if note is None:
                        continue
                    try:
                        self._on_notification(note.notification_ele)
                    except Exception:
                        log.exception("could not handle a notification")
                if not self._stop.is_set():
                    self._set_state(False, "session closed")
            except Exception as exc:  # noqa: BLE001 - reconnect on anything
                self._set_state(False, f"{type(exc).__name__}: {exc}")
                failures += 1
            finally:
                if manager is not None:
                    try:
                        manager.close_session()
                    except Exception as exc:  # noqa: BLE001 - it is being discarded
                        log.debug("closing the notification session: %s", exc)
            delay = min(BACKOFF_FIRST_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S)
            self._stop.wait(delay)
