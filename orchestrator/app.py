"""The orchestrator's WSGI app: REST API (``/api/v1``), OpenAPI description
(``/openapi.json``), Prometheus metrics (``/metrics``) and the dashboard (``/dashboard/``).

``create_app(services)`` is the factory; the daemon and the tests build the services (a
:class:`~orchestrator.controller_gateway.ControllerGateway` on a NETCONF client, the event log,
the twin's fault actions, the operator token) and pass them in.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, redirect, request, send_from_directory
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.auth import authenticate
from orchestrator.controller_gateway import ControllerGateway
from orchestrator.errors import FieldError, InvalidRequest, NoTwin, TooManyStreams
from orchestrator.event_log import EventLog, active_alarms
from orchestrator.fault_actions import TwinFaults
from orchestrator.metrics import OrchestratorMetrics, create_metrics
from orchestrator.openapi import (
    API_PREFIX,
    ENTRY_NAME_PATTERN,
    SAE_ID_PATTERN,
    UUID_PATTERN,
    build_openapi,
)
from orchestrator.problems import register_error_handlers
from orchestrator.request_validation import SchemaValidator, check_value

STATIC_DIR = Path(__file__).resolve().parent / "static"
VERSION = "0.1.0"

_UUID_SCHEMA = {"type": "string", "pattern": UUID_PATTERN}
_KEY_SCHEMAS = {
    "users": {"type": "string", "maxLength": 128, "pattern": ENTRY_NAME_PATTERN},
    "sla_profiles": {"type": "string", "maxLength": 128, "pattern": ENTRY_NAME_PATTERN},
    "applications": {"type": "string", "maxLength": 256, "pattern": SAE_ID_PATTERN},
}
_ACCESS_ITEMS = {"users": "User", "applications": "Application", "sla_profiles": "SlaProfile"}
_ACCESS_LIST_NAMES = {"users": "user", "applications": "application",
                      "sla_profiles": "sla_profile"}


@dataclass
class OrchestratorServices:
    """What the app needs; built by the daemon (or a test)."""

    gateway: ControllerGateway
    events: EventLog
    token: str
    faults: TwinFaults | None = None
    controller_status: Callable[[], dict[str, Any]] = dict
    metrics: OrchestratorMetrics = field(default_factory=create_metrics)
    max_streams: int = 8
    heartbeat_s: float = 15.0
    stopping: threading.Event = field(default_factory=threading.Event)


def create_app(services: OrchestratorServices) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    document = build_openapi(VERSION)
    validator = SchemaValidator(document)
    streams = threading.BoundedSemaphore(services.max_streams)
    metrics = services.metrics
    register_error_handlers(app)

    @app.before_request
    def _start_clock() -> None:
        g.started = time.perf_counter()
        if request.path.startswith(API_PREFIX + "/") or request.path == API_PREFIX:
            g.operator = authenticate(request.environ, services.token)

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        started = getattr(g, "started", None)
        if started is not None:
            metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(document)

    @app.get("/metrics")
    def prometheus() -> Response:
        metrics.controller_up.set(1 if services.controller_status().get("subscribed") else 0)
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/")
    def root() -> Response:
        return redirect("/dashboard/", code=302)  # type: ignore[return-value]

    @app.get("/dashboard/")
    def dashboard() -> Response:
        return send_from_directory(STATIC_DIR, "index.html")

    @app.get("/dashboard/<path:name>")
    def dashboard_file(name: str) -> Response:
        return send_from_directory(STATIC_DIR, name)

    app.register_blueprint(_api_blueprint(services, validator, streams))
    return app


# ------------------------------------------------------------------------------ helpers


def _json_body(validator: SchemaValidator, schema: str, *, required: bool = True) -> dict:
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise InvalidRequest("a JSON body is required")
        body: Any = {}
    else:
        if not request.is_json:
            from werkzeug.exceptions import UnsupportedMediaType

            raise UnsupportedMediaType("send the body as application/json")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
        except RecursionError:  # nested past the parser's recursion limit: not a 500
            raise InvalidRequest("the body is not valid JSON: nested too deeply") from None
    validator.check(schema, body)
    return body


def _int_query(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"query parameter {name} must be an integer",
                             []) from None
    check_value(value, {"type": "integer", "minimum": minimum, "maximum": maximum},
                f"/query/{name}")
    return value


def _bool_query(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise InvalidRequest(f"query parameter {name} must be true or false")


def check_bandwidths(body: dict[str, Any]) -> None:
    """An SLA body naming both rates must not have the floor above the ceiling (the YANG
    ``must`` the controller checks too; refused here with the field named)."""
    low, high = body.get("min_bandwidth"), body.get("max_bandwidth")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        raise InvalidRequest("min_bandwidth is above max_bandwidth",
                             [FieldError("/min_bandwidth", "min_bandwidth is above max_bandwidth")])


def _created(body: dict[str, Any], location: str) -> Response:
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


def _no_content() -> Response:
    return Response(status=204)


# ------------------------------------------------------------------------------ the API


def _api_blueprint(services: OrchestratorServices, validator: SchemaValidator,
                   streams: threading.BoundedSemaphore) -> Blueprint:
    api = Blueprint("api", __name__, url_prefix=API_PREFIX)
    gw = services.gateway

    def uuid(value: str, name: str) -> str:
        check_value(value, _UUID_SCHEMA, f"/path/{name}")
        return value

    # ---------------------------------------------------------------- topology
    @api.get("/qkd_network")
    def network() -> Response:
        return jsonify(gw.network())

    @api.get("/qkd_network/nodes")
    def nodes() -> Response:
        return jsonify({"sdqkd_node": gw.nodes()})

    @api.get("/qkd_network/nodes/<qkdn_id>")
    def node(qkdn_id: str) -> Response:
        return jsonify(gw.node(uuid(qkdn_id, "qkdn_id")))

    @api.get("/qkd_network/links")
    def links() -> Response:
        return jsonify({"phys_link": gw.phys_links()})

    @api.get("/qkd_network/links/<qkdl_id>")
    def link(qkdl_id: str) -> Response:
        return jsonify(gw.phys_link(uuid(qkdl_id, "qkdl_id")))

    @api.patch("/qkd_network/links/<qkdl_id>")
    def update_link(qkdl_id: str) -> Response:
        uuid(qkdl_id, "qkdl_id")
        body = _json_body(validator, "PhysLinkPatch")
        return jsonify(gw.update_phys_link(qkdl_id, body["phys_link_details"]))

    @api.get("/qkd_network/service_links")
    def service_links() -> Response:
        return jsonify({"svc_link": gw.svc_links()})

    @api.get("/qkd_network/service_links/<qkdl_id>")
    def service_link(qkdl_id: str) -> Response:
        return jsonify(gw.svc_link(uuid(qkdl_id, "qkdl_id")))

    # ---------------------------------------------------------------- sessions
    @api.get("/sessions")
    def sessions() -> Response:
        return jsonify({"svc_link": gw.svc_links()})

    @api.get("/sessions/<qkdl_id>")
    def session(qkdl_id: str) -> Response:
        return jsonify(gw.svc_link(uuid(qkdl_id, "qkdl_id")))

    @api.delete("/sessions/<qkdl_id>")
    def delete_session(qkdl_id: str) -> Response:
        gw.close_svc_link(uuid(qkdl_id, "qkdl_id"), "closed by an operator")
        return _no_content()

    @api.post("/sessions/<qkdl_id>/close")
    def close_session(qkdl_id: str) -> Response:
        uuid(qkdl_id, "qkdl_id")
        body = _json_body(validator, "Reason", required=False)
        gw.close_svc_link(qkdl_id, body.get("reason") or "closed by an operator")
        return jsonify({"qkdl_id": qkdl_id, "closed": True})

    @api.post("/sessions/<qkdl_id>/restore")
    def restore_session(qkdl_id: str) -> Response:
        uuid(qkdl_id, "qkdl_id")
        return jsonify({"qkdl_id": qkdl_id, "paths": gw.restore_svc_link(qkdl_id)})

    # ---------------------------------------------------------------- access lists
    def _register_access(collection: str) -> None:
        item = _ACCESS_ITEMS[collection]
        list_name = _ACCESS_LIST_NAMES[collection]
        key_schema = _KEY_SCHEMAS[collection]

        def key_of(value: str) -> str:
            check_value(value, key_schema, "/path/key")
            return value

        def list_all() -> Response:
            return jsonify({list_name: gw.access_list(collection)})

        def create() -> Response:
            body = _json_body(validator, f"{item}Create")
            check_bandwidths(body)
            entry = gw.create_access(collection, body)
            key = next(iter(v for k, v in body.items() if k in ("name", "sae_id")))
            return _created(entry, f"{API_PREFIX}/{collection}/{key}")

        def get_one(key: str) -> Response:
            return jsonify(gw.access_entry(collection, key_of(key)))

        def patch_one(key: str) -> Response:
            key_of(key)
            body = _json_body(validator, f"{item}Patch")
            check_bandwidths(body)
            return jsonify(gw.update_access(collection, key, body))

        def delete_one(key: str) -> Response:
            gw.delete_access(collection, key_of(key))
            return _no_content()

        base = f"/{collection}"
        api.add_url_rule(base, f"list_{collection}", list_all, methods=["GET"])
        api.add_url_rule(base, f"create_{collection}", create, methods=["POST"])
        api.add_url_rule(f"{base}/<key>", f"get_{collection}", get_one, methods=["GET"])
        api.add_url_rule(f"{base}/<key>", f"patch_{collection}", patch_one, methods=["PATCH"])
        api.add_url_rule(f"{base}/<key>", f"delete_{collection}", delete_one,
                         methods=["DELETE"])
        if collection != "sla_profiles":
            def revoke(key: str) -> Response:
                key_of(key)
                body = _json_body(validator, "Reason", required=False)
                change: dict[str, Any] = {"revoked": True}
                if collection == "users" and body.get("reason"):
                    change["revoked_reason"] = body["reason"]
                return jsonify(gw.update_access(collection, key, change))

            api.add_url_rule(f"{base}/<key>/revoke", f"revoke_{collection}", revoke,
                             methods=["POST"])

    for collection in _ACCESS_ITEMS:
        _register_access(collection)

    # ---------------------------------------------------------------- events and alarms
    @api.get("/events")
    def events() -> Response:
        after = _int_query("after", 0, 0, 2**53)
        limit = _int_query("limit", 100, 1, 1000)
        raw_types = request.args.get("type")
        types = None
        if raw_types is not None:
            check_value(raw_types, {"type": "string", "maxLength": 64,
                                    "pattern": "^[a-z_]+(,[a-z_]+)*$"}, "/query/type")
            types = raw_types.split(",")
        return jsonify(services.events.page(after, limit, types).to_json())

    @api.get("/alarms")
    def alarms() -> Response:
        after = _int_query("after", 0, 0, 2**53)
        limit = _int_query("limit", 100, 1, 1000)
        if _bool_query("active"):
            active = active_alarms(services.events.snapshot())
            chosen = [e for e in active if e.seq > after][:limit]
            cursor = chosen[-1].seq if chosen else after
            return jsonify({"alarms": [e.to_json() for e in chosen], "next_cursor": cursor})
        page = services.events.page(after, limit, ["alarm"])
        return jsonify({"alarms": [e.to_json() for e in page.events],
                        "next_cursor": page.next_cursor})

    @api.get("/events/stream")
    def stream() -> Response:
        log = services.events
        start = request.headers.get("Last-Event-ID")
        after = _int_query("after", log.last_seq, 0, 2**53)
        if start is not None and request.args.get("after") is None:
            try:
                after = max(0, int(start))
            except ValueError:
                raise InvalidRequest("Last-Event-ID must be an event sequence number") from None
        limit = _int_query("limit", 0, 0, 1_000_000)  # 0: no limit
        if not streams.acquire(blocking=False):
            raise TooManyStreams(f"at most {services.max_streams} event streams at a time")
        services.metrics.streams.inc()

        def generate() -> Iterator[str]:
            cursor, sent = after, 0
            try:
                yield f"retry: 2000\n: qkdn orchestrator event stream after {cursor}\n\n"
                while not services.stopping.is_set():
                    if not log.wait_after(cursor, min(services.heartbeat_s, 1.0)):
                        if time.monotonic() - last_beat[0] >= services.heartbeat_s:
                            last_beat[0] = time.monotonic()
                            yield ": keep-alive\n\n"
                        continue
                    page = log.page(cursor, 100)
                    cursor = page.next_cursor
                    for event in page.events:
                        yield (f"id: {event.seq}\nevent: {event.type}\n"
                               f"data: {json.dumps(event.to_json())}\n\n")
                        sent += 1
                        if limit and sent >= limit:
                            return
            finally:
                services.metrics.streams.dec()
                streams.release()

        last_beat = [time.monotonic()]
        response = Response(generate(), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"
        return response

    # ---------------------------------------------------------------- faults
    def twin() -> TwinFaults:
        if services.faults is None:
            raise NoTwin("this orchestrator runs without the network's state directory: "
                         "no digital twin to inject faults into")
        return services.faults

    @api.get("/faults")
    def faults() -> Response:
        return jsonify({"links": twin().all_links()})

    @api.post("/faults")
    def inject_fault() -> Response:
        body = _json_body(validator, "FaultAction")
        result = twin().apply(body)
        services.events.append("fault_injected", result)
        response = jsonify(result)
        response.status_code = 202
        return response

    # ---------------------------------------------------------------- status
    @api.get("/status")
    def status() -> Response:
        log = services.events
        return jsonify({"controller": services.controller_status(),
                        "events": {"last_seq": log.last_seq, "by_type": dict(log.counts)},
                        "twin": services.faults is not None, "version": VERSION})

    return api
