"""``qkdn orchestrator``: the orchestrator process of a network brought up in a state
directory (or of any controller given its NETCONF north-bound endpoint).

With ``--state-dir DIR`` it finds the controller's north-bound interface in
``DIR/endpoints.json`` (``controller.nbi``, read at every connection), keeps its operator token in
``DIR/orchestrator/token`` (0600, created if missing), injects faults into the network's twin,
and writes ``DIR/orchestrator/ready.json`` (``url``, ``pid``, ``token_file``) once it serves.
It serves at once: until the controller's entry appears, API calls answer 502 and the
notification listener keeps retrying.

Settings: argument, then ``QKDN_ORCHESTRATOR_*`` environment variable, then default, resolved
once (:func:`resolve_settings`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from orchestrator.app import OrchestratorServices, create_app
from orchestrator.auth import load_or_create_token
from orchestrator.controller_gateway import ControllerGateway
from orchestrator.errors import ControllerUnavailable
from orchestrator.event_feed import NotificationRecorder
from orchestrator.event_log import DEFAULT_CAPACITY, EventLog
from orchestrator.fault_actions import TwinFaults
from orchestrator.metrics import create_metrics
from orchestrator.nbi_client import NbiClient, NbiEndpoint, NotificationListener
from orchestrator.nbi_data import NbiModel
from orchestrator.server import OrchestratorServer, tls_files
from qkdn.errors import ConfigError
from qkdn.state_files import read_json, write_json_atomic

log = logging.getLogger(__name__)

ORCHESTRATOR_DIR = "orchestrator"


@dataclass(frozen=True)
class OrchestratorSettings:
    state_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    nbi: NbiEndpoint | None = None  #: None: read controller.nbi from DIR/endpoints.json
    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    event_capacity: int = DEFAULT_CAPACITY
    max_streams: int = 8

    @property
    def folder(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / ORCHESTRATOR_DIR


def resolve_settings(*, state_dir: Path | None = None, host: str | None = None,
                     port: int | None = None, nbi: NbiEndpoint | None = None,
                     token_file: Path | None = None, tls_cert: Path | None = None,
                     tls_key: Path | None = None, tls_ca: Path | None = None,
                     tls: bool | None = None,
                     environ: Mapping[str, str] = os.environ) -> OrchestratorSettings:
    """Argument, then ``QKDN_ORCHESTRATOR_HOST`` / ``_PORT`` / ``_TOKEN_FILE`` / ``_TLS``,
    then default. ``tls`` with a state directory serves HTTPS with certificates of the
    network CA (:func:`~orchestrator.operator_pki.issue_orchestrator_pki`)."""
    def pick(value: Any, env: str, default: Any) -> Any:
        return value if value is not None else environ.get(env, default)

    try:
        port_value = int(pick(port, "QKDN_ORCHESTRATOR_PORT", 0))
    except ValueError:
        raise ConfigError("QKDN_ORCHESTRATOR_PORT is not a port number") from None
    token = pick(token_file, "QKDN_ORCHESTRATOR_TOKEN_FILE", None)
    if token is None and state_dir is not None:
        token = Path(state_dir) / ORCHESTRATOR_DIR / "token"
    if token is None:
        raise ConfigError("without --state-dir the orchestrator needs --token-file")
    if nbi is None and state_dir is None:
        raise ConfigError("give --state-dir or the controller's --nbi-host/--nbi-port")
    if tls is None:
        tls = environ.get("QKDN_ORCHESTRATOR_TLS", "").lower() in ("1", "true", "yes")
    if tls and tls_cert is None:
        if state_dir is None:
            raise ConfigError("--tls needs --state-dir (or give --tls-cert/--tls-key/--tls-ca)")
        from orchestrator.operator_pki import issue_orchestrator_pki

        files = issue_orchestrator_pki(Path(state_dir)).server
        tls_cert, tls_key, tls_ca = files.cert, files.key, files.ca
    if (tls_cert is None) != (tls_key is None) or (tls_cert is not None and tls_ca is None):
        raise ConfigError("HTTPS needs --tls-cert, --tls-key and --tls-ca together")
    return OrchestratorSettings(
        state_dir=None if state_dir is None else Path(state_dir).resolve(),
        host=str(pick(host, "QKDN_ORCHESTRATOR_HOST", "127.0.0.1")), port=port_value,
        nbi=nbi, token_file=Path(token), tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)


def nbi_from_endpoints(state_dir: Path) -> NbiEndpoint:
    """``controller.nbi`` of ``DIR/endpoints.json``; ControllerUnavailable if absent."""
    try:
        endpoints = read_json(state_dir / "endpoints.json")
    except (OSError, ValueError) as exc:
        raise ControllerUnavailable(f"{state_dir}/endpoints.json is not readable: {exc}") from exc
    nbi = (endpoints.get("controller") or {}).get("nbi")
    if not nbi:
        raise ControllerUnavailable(
            "endpoints.json names no controller north-bound interface (controller.nbi)")
    return NbiEndpoint.from_json(nbi)


class Orchestrator:
    """The assembled orchestrator: NETCONF client, notification listener, app and server.
    A context manager; :attr:`base_url` once started."""

    def __init__(self, settings: OrchestratorSettings, *, model: NbiModel | None = None) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.model = model or NbiModel()
        self.metrics = create_metrics()
        self.events = EventLog(settings.event_capacity)
        assert settings.token_file is not None
        self.token = load_or_create_token(settings.token_file)
        self._nbi: NbiEndpoint | None = settings.nbi
        self.client = NbiClient(self._endpoint)
        self.recorder = NotificationRecorder(self.model, self.events, self.metrics)
        self.listener = NotificationListener(self._endpoint, self.recorder,
                                             self.recorder.on_state)
        faults = TwinFaults(settings.state_dir) if settings.state_dir is not None else None
        self.services = OrchestratorServices(
            gateway=ControllerGateway(self.client, self.model), events=self.events,
            token=self.token, faults=faults, controller_status=self.controller_status,
            metrics=self.metrics, max_streams=settings.max_streams, stopping=self.stop_event)
        self.app = create_app(self.services)
        tls = None
        if settings.tls_cert is not None:
            assert settings.tls_key is not None and settings.tls_ca is not None
            tls = tls_files(settings.tls_cert, settings.tls_key, settings.tls_ca)
        self.server = OrchestratorServer(self.app, settings.host, settings.port, tls)
        self._stack = ExitStack()

    def _endpoint(self) -> NbiEndpoint:
        """The configured endpoint, else ``controller.nbi`` of endpoints.json, read again at
        every (re)connection: the controller may come up after us or move."""
        if self.settings.nbi is not None:
            return self.settings.nbi
        assert self.settings.state_dir is not None
        self._nbi = nbi_from_endpoints(self.settings.state_dir)
        return self._nbi

    def controller_status(self) -> dict[str, Any]:
        nbi = self._nbi
        return {"subscribed": self.listener.connected,
                "nbi": None if nbi is None else f"{nbi.host}:{nbi.port}",
                "requests": self.client.requests, "failures": self.client.failures}

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def start(self) -> Self:
        self._stack.enter_context(self.server)
        self._stack.callback(self.client.close)
        self._stack.callback(self.stop_event.set)  # ends open event streams first
        self._stack.enter_context(self.listener)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self._stack.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(settings: OrchestratorSettings) -> int:
    """The process: serve until SIGTERM/SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Orchestrator(settings) as orchestrator:
        if settings.folder is not None:
            ready: dict[str, Any] = {"url": orchestrator.base_url, "pid": os.getpid(),
                                     "token_file": str(settings.token_file)}
            if settings.tls_ca is not None:
                ready["ca_cert"] = str(settings.tls_ca)
                operator = settings.folder.parent / "pki" / "operator"
                if (operator / "operator.pem").exists():
                    ready["operator_cert"] = str(operator / "operator.pem")
                    ready["operator_key"] = str(operator / "operator.key")
            write_json_atomic(settings.folder / "ready.json", ready)
        log.info("orchestrator serving on %s", orchestrator.base_url)
        stop.wait()
    return 0


def orchestrator_child_spec(state_dir: Path) -> Any:
    """The supervisor's :class:`~qkdn.supervisor.ChildSpec` of the orchestrator process (for
    ``qkdn up``): ``qkdn orchestrator --state-dir DIR``, log in
    ``DIR/orchestrator/orchestrator.log``, ready when ``DIR/orchestrator/ready.json`` exists."""
    import sys

    from qkdn.supervisor import ChildSpec

    folder = Path(state_dir) / ORCHESTRATOR_DIR
    return ChildSpec("orchestrator", "orchestrator",
                     (sys.executable, "-m", "qkdn.cli", "orchestrator", "--state-dir",
                      str(state_dir)),
                     folder / "orchestrator.log", folder / "ready.json")
