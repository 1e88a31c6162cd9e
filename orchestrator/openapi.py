"""The OpenAPI 3.1 description of the orchestrator's REST API (served at ``/openapi.json``).

The document is the contract *and* the validator: request bodies and query parameters are
checked against the schemas below (:mod:`orchestrator.request_validation`), and the tests run
Schemathesis against it. Resource schemas follow the YANG modules ``qkdn-sdn-topology``,
``qkdn-sdn-inventory`` and ``qkdn-sdn-access`` (ETSI GS QKD 018 shapes) without module
prefixes; see ``docs/orchestrator.md``.
"""

from __future__ import annotations

import copy
from typing import Any

API_PREFIX = "/api/v1"
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ENTRY_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
#: YANG sae-id is '[^\s]+'; control characters are excluded too (XML cannot carry them).
SAE_ID_PATTERN = "^[^\\s\\u0000-\\u001f\\u007f\\ufffe\\uffff]+$"
#: Free text: anything XML 1.0 can carry.
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\ufffe\\uffff]*$"
UINT32_MAX = 4_294_967_295
PROBLEM_MEDIA = "application/problem+json"

FAULT_LINK_ACTIONS = ("link-down", "link-up", "loss", "eavesdrop", "clear")
FAULT_NODE_ACTIONS = ("node-kill", "node-restart")

LINK_STATUS = ["ACTIVE", "PASSIVE", "PENDING", "OFF"]
NODE_STATUS = ["NEW", "OPERATING", "DOWN", "FAILURE", "OUT"]
SESSION_STATES = ["config_requested", "accepted", "active", "terminated"]
RESTORATION_TYPES = ["AUTOMATIC", "MANUAL"]
FALLBACK_POLICIES = ["qkd-only", "hybrid", "pqc-fallback"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _uint32(minimum: int = 0) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": UINT32_MAX}


_UUID = {"type": "string", "pattern": UUID_PATTERN}
_ENTRY_NAME = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ENTRY_NAME_PATTERN}
_SAE_ID = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": SAE_ID_PATTERN}
_COUNT = {"type": "integer", "minimum": 0}

_PERF = {
    "type": "object",
    "properties": {
        "expected_consumption": _COUNT, "skr": _COUNT, "eskr": _COUNT,
        "phys_perf": {"type": "array", "items": {
            "type": "object", "required": ["perf_type"],
            "properties": {"perf_type": {"type": "string"}, "value": {"type": "number"}}}},
        "key_store": {"type": "object", "properties": {
            "stored_key_bits": _COUNT, "capacity_bits": _COUNT}},
        "svc_link_count": _COUNT, "overloaded": {"type": "boolean"},
        "updated": {"type": "string"},
        "key_requests": _COUNT, "keys_delivered": _COUNT, "bits_delivered": _COUNT,
    },
}

_PATHS = {
    "type": "object",
    "properties": {"path": {"type": "array", "items": {
        "type": "object", "required": ["path_index"],
        "properties": {
            "path_index": _COUNT,
            "hop": {"type": "array", "items": {
                "type": "object", "required": ["hop_index", "qkdn_id"],
                "properties": {"hop_index": _COUNT, "qkdn_id": _UUID, "phys_link": _UUID}}},
        }}}},
}

_PATH_RESTORATION_IN = {
    "type": "object", "additionalProperties": False,
    "properties": {"restoration_type": {"enum": RESTORATION_TYPES},
                   "hold_off_time": _uint32()},
}

_SLA_FIELDS = {
    "max_bandwidth": _uint32(1), "min_bandwidth": _uint32(), "max_priority": _uint32(),
    "max_sessions": _uint32(1), "idle_timeout": _uint32(1),
    "allow_lower_rate": {"type": "boolean"}, "fallback": {"enum": FALLBACK_POLICIES},
    "path_restoration": _PATH_RESTORATION_IN,
}

_USER_FIELDS = {
    "sla_profile": _ENTRY_NAME,
    "allowed_peer": {"type": "array", "uniqueItems": True, "maxItems": 1024, "items": {
        "anyOf": [_ENTRY_NAME, {"const": "*"}]}},
    "revoked": {"type": "boolean"},
    "revoked_reason": {"type": "string", "minLength": 1, "maxLength": 512,
                       "pattern": TEXT_PATTERN},
}

_APPLICATION_FIELDS = {
    "user": _ENTRY_NAME, "qkdn_id": _UUID, "revoked": {"type": "boolean"},
}


def _object(properties: dict[str, Any], required: list[str] | None = None, *,
            closed: bool = True, min_properties: int = 0) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    if min_properties:
        schema["minProperties"] = min_properties
    return schema


SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status"],
        "description": "RFC 9457 problem details",
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"}, "instance": {"type": "string"},
            "errors": {"type": "array", "items": {
                "type": "object", "required": ["pointer", "detail"],
                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}}}},
        },
    },
    "Node": {
        "type": "object", "required": ["qkdn_id"],
        "description": "qkdn-sdn-topology sdqkd_node (with qkdn-sdn-inventory qkdn_details)",
        "properties": {
            "qkdn_id": _UUID, "qkdn_name": {"type": "string"},
            "qkdn_status": {"type": "string", "examples": NODE_STATUS},
            "qkd_interfaces": {"type": "object", "properties": {"qkd_interface": {
                "type": "array", "items": {"type": "object", "required": ["qkdi_id"],
                                           "properties": {"qkdi_id": _COUNT,
                                                          "qkdi_status": {"type": "string"},
                                                          "qkdi_details": {"type": "object"}}}}}},
            "qkdn_details": {"type": "object", "properties": {
                "qkdn_location_id": {"type": "string"}, "qkdn_version": {"type": "string"},
                "qkdn_capabilities": {"type": "object"}, "kme": {"type": "object"},
                "last_seen": {"type": "string"}}},
        },
    },
    "PhysLink": {
        "type": "object", "required": ["qkdl_id"],
        "description": "qkdn-sdn-topology phys_link (with qkdn-sdn-inventory phys_link_details)",
        "properties": {
            "qkdl_id": _UUID,
            "qkdl_local": {"type": "object", "properties": {"qkdn_id": _UUID, "qkdi_id": _COUNT}},
            "qkdl_remote": {"type": "object", "properties": {"qkdn_id": _UUID, "qkdi_id": _COUNT}},
            "qkdl_status": {"type": "string", "examples": LINK_STATUS},
            "phys_link_details": {"type": "object", "properties": {
                "qkdl_enable": {"type": "boolean"}, "phys_channel_att": {"type": "number"},
                "phys_wavelength": {"type": "integer"}, "phys_length": {"type": "number"},
                "qkdl_performance": _PERF}},
        },
    },
    "PhysLinkPatch": _object({"phys_link_details": _object({
        "qkdl_enable": {"type": "boolean"},
        "phys_channel_att": {"type": "number", "minimum": 0, "maximum": 1000},
        "phys_length": {"type": "number", "minimum": 0, "maximum": 100000},
    }, min_properties=1)}, ["phys_link_details"]),
    "ServiceLink": {
        "type": "object", "required": ["qkdl_id"],
        "description": "qkdn-sdn-topology svc_link (a key-association session) with "
                       "qkdn-sdn-inventory svc_link_details",
        "properties": {
            "qkdl_id": _UUID,
            "qkdl_local": {"type": "object", "properties": {"qkdn_id": _UUID}},
            "qkdl_remote": {"type": "object", "properties": {"qkdn_id": _UUID}},
            "qkdl_status": {"type": "string"},
            "paths": _PATHS,
            "svc_link_details": {"type": "object", "properties": {
                "local_app": {"type": "object"}, "remote_app": {"type": "object"},
                "session_state": {"type": "string", "examples": SESSION_STATES},
                "state_reason": {"type": "string"}, "bandwidth": _COUNT,
                "requested_bandwidth": _COUNT, "priority": _COUNT, "idle_timeout": _COUNT,
                "creation_time": {"type": "string"}, "last_activity": {"type": "string"},
                "expiration_time": {"type": "string"}, "path_restoration": {"type": "object"},
                "restorations": _COUNT, "qkdl_performance": _PERF,
                "key_provenance": {
                    "type": "object",
                    "description": "hybrid QKD/PQC provisioning (ADR 0009): policy, current "
                                   "kind of key, keys and bits delivered per kind",
                    "properties": {
                        "fallback_policy": {"enum": ["qkd-only", "hybrid", "pqc-fallback"]},
                        "key_mode": {"enum": ["qkd", "hybrid", "pqc"]},
                        "delivered": {"type": "array", "items": {
                            "type": "object", "required": ["provenance"],
                            "properties": {"provenance": {"enum": ["qkd", "hybrid", "pqc"]},
                                           "keys": _COUNT, "bits": _COUNT}}}}}}},
        },
    },
    "Network": {
        "type": "object", "required": ["qkd_network"],
        "properties": {"qkd_network": {"type": "object", "properties": {
            "qkd_network_id": _UUID, "qkd_network_name": {"type": "string"},
            "sdqkd_nodes": {"type": "object", "properties": {
                "sdqkd_node": {"type": "array", "items": _ref("Node")}}},
            "qkd_links": {"type": "object", "properties": {
                "phys_links": {"type": "object", "properties": {
                    "phys_link": {"type": "array", "items": _ref("PhysLink")}}},
                "svc_links": {"type": "object", "properties": {
                    "svc_link": {"type": "array", "items": _ref("ServiceLink")}}}}}}}},
    },
    "NodeList": {"type": "object", "required": ["sdqkd_node"], "properties": {
        "sdqkd_node": {"type": "array", "items": _ref("Node")}}},
    "PhysLinkList": {"type": "object", "required": ["phys_link"], "properties": {
        "phys_link": {"type": "array", "items": _ref("PhysLink")}}},
    "ServiceLinkList": {"type": "object", "required": ["svc_link"], "properties": {
        "svc_link": {"type": "array", "items": _ref("ServiceLink")}}},
    "Paths": _PATHS,
    "SlaProfile": {"type": "object", "required": ["name", "max_bandwidth"], "properties": {
        "name": _ENTRY_NAME, **_SLA_FIELDS,
        "path_restoration": {"type": "object"}}},
    "SlaProfileCreate": _object({"name": _ENTRY_NAME, **_SLA_FIELDS}, ["name", "max_bandwidth"]),
    "SlaProfilePatch": _object(dict(_SLA_FIELDS), min_properties=1),
    "SlaProfileList": {"type": "object", "required": ["sla_profile"], "properties": {
        "sla_profile": {"type": "array", "items": _ref("SlaProfile")}}},
    "User": {"type": "object", "required": ["name"], "properties": {
        "name": _ENTRY_NAME, **_USER_FIELDS, "active_sessions": _COUNT}},
    "UserCreate": _object({"name": _ENTRY_NAME, **_USER_FIELDS}, ["name", "sla_profile"]),
    "UserPatch": _object(dict(_USER_FIELDS), min_properties=1),
    "UserList": {"type": "object", "required": ["user"], "properties": {
        "user": {"type": "array", "items": _ref("User")}}},
    "Application": {"type": "object", "required": ["sae_id"], "properties": {
        "sae_id": _SAE_ID, **_APPLICATION_FIELDS, "active_sessions": _COUNT}},
    "ApplicationCreate": _object({"sae_id": _SAE_ID, **_APPLICATION_FIELDS},
                                 ["sae_id", "user", "qkdn_id"]),
    "ApplicationPatch": _object(dict(_APPLICATION_FIELDS), min_properties=1),
    "ApplicationList": {"type": "object", "required": ["application"], "properties": {
        "application": {"type": "array", "items": _ref("Application")}}},
    "Reason": _object({"reason": {"type": "string", "minLength": 1, "maxLength": 512,
                                  "pattern": TEXT_PATTERN}}),
    "Event": {"type": "object", "required": ["seq", "event_time", "type", "data"],
              "properties": {"seq": {"type": "integer", "minimum": 1},
                             "event_time": {"type": "string"}, "type": {"type": "string"},
                             "data": {"type": "object"}}},
    "EventPage": {"type": "object",
                  "required": ["events", "next_cursor", "oldest_seq", "truncated"],
                  "properties": {"events": {"type": "array", "items": _ref("Event")},
                                 "next_cursor": _COUNT, "oldest_seq": _COUNT,
                                 "truncated": {"type": "boolean"}}},
    "AlarmList": {"type": "object", "required": ["alarms"], "properties": {
        "alarms": {"type": "array", "items": _ref("Event")}, "next_cursor": _COUNT}},
    "FaultAction": {
        "oneOf": [
            _object({"action": {"enum": ["link-down", "link-up", "clear"]},
                     "link": _ref("LinkSelector")}, ["action", "link"]),
            _object({"action": {"const": "loss"}, "link": _ref("LinkSelector"),
                     "value": {"type": "number", "minimum": 0, "maximum": 100}},
                    ["action", "link", "value"]),
            _object({"action": {"const": "eavesdrop"}, "link": _ref("LinkSelector"),
                     "value": {"type": "number", "minimum": 0, "maximum": 1}},
                    ["action", "link", "value"]),
            _object({"action": {"enum": list(FAULT_NODE_ACTIONS)},
                     "node": {"type": "string", "minLength": 1, "maxLength": 128,
                              "pattern": TEXT_PATTERN}},
                    ["action", "node"]),
        ],
    },
    "LinkSelector": {
        "description": "a physical link by its qkdl_id or by the names of its two nodes",
        "oneOf": [
            _object({"qkdl_id": _UUID}, ["qkdl_id"]),
            _object({"nodes": {"type": "array", "minItems": 2, "maxItems": 2,
                               "items": {"type": "string", "minLength": 1, "maxLength": 128,
                                         "pattern": TEXT_PATTERN}}},
                    ["nodes"]),
        ],
    },
    "FaultResult": {"type": "object", "required": ["action"], "properties": {
        "action": {"type": "string"}, "link": {"type": "object"}, "node": {"type": "string"},
        "record": {"type": "object"}, "message": {"type": "string"}}},
    "LinkFaults": {"type": "object", "required": ["links"], "properties": {"links": {
        "type": "array", "items": {"type": "object", "required": ["qkdl_id", "nodes", "state"],
                                   "properties": {
                                       "qkdl_id": _UUID,
                                       "nodes": {"type": "array", "items": {"type": "string"}},
                                       "state": {"type": "object"},
                                       "records": {"type": "array"}}}}}},
    "Status": {"type": "object", "required": ["controller"], "properties": {
        "controller": {"type": "object"}, "events": {"type": "object"},
        "twin": {"type": "boolean"}, "version": {"type": "string"}}},
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {PROBLEM_MEDIA: {"schema": _ref("Problem")}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_COMMON_ERRORS = {"400": _problem("a parameter or the body does not match the schema"),
                  "401": _problem("no valid operator credentials"),
                  "502": _problem("the controller cannot be reached or answered badly")}


def _op(op_id: str, summary: str, responses: dict[str, Any], *, tag: str,
        params: list[dict[str, Any]] | None = None,
        body: str | None = None, body_required: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag],
                          "responses": {**responses, **_COMMON_ERRORS}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": body_required, "content": {
            "application/json": {"schema": _ref(body)}}}
        op["responses"].setdefault("400", _problem("the body does not match the schema"))
        op["responses"].setdefault("415", _problem("the body is not JSON"))
    return op


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_PAGE_PARAMS = [
    _query("after", {"type": "integer", "minimum": 0, "maximum": 2**53},
           "cursor: return events with a larger sequence number"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
           "page size (default 100)"),
]


def _access_paths(collection: str, key: str, key_schema: dict[str, Any], item: str,
                  revocable: bool) -> dict[str, Any]:
    tag = collection
    base = f"{API_PREFIX}/{collection}"
    one = f"{base}/{{{key}}}"
    key_param = [_path_param(key, key_schema)]
    paths: dict[str, Any] = {
        base: {
            "get": _op(f"list_{collection}", f"List {collection}",
                       {"200": _json(collection, _ref(f"{item}List"))}, tag=tag),
            "post": _op(f"create_{item.lower()}", f"Create one of {collection}",
                        {"201": _json("created", _ref(item)),
                         "409": _problem("exists already, or refers to something unknown")},
                        tag=tag, body=f"{item}Create"),
        },
        one: {
            "get": _op(f"get_{item.lower()}", f"One of {collection}",
                       {"200": _json(item, _ref(item)), "404": _problem("unknown")},
                       tag=tag, params=key_param),
            "patch": _op(f"update_{item.lower()}", "Change leaves (merge)",
                         {"200": _json("updated", _ref(item)), "404": _problem("unknown"),
                          "409": _problem("refers to something unknown")},
                         tag=tag, params=key_param, body=f"{item}Patch"),
            "delete": _op(f"delete_{item.lower()}", "Delete (refused while referenced)",
                          {"204": {"description": "deleted"}, "404": _problem("unknown"),
                           "409": _problem("still referenced")},
                          tag=tag, params=key_param),
        },
    }
    if revocable:
        paths[f"{one}/revoke"] = {"post": _op(
            f"revoke_{item.lower()}", "Revoke (kept for audit; sessions are closed)",
            {"200": _json("revoked", _ref(item)), "404": _problem("unknown")},
            tag=tag, params=key_param, body="Reason", body_required=False)}
    return paths


def _build_paths() -> dict[str, Any]:
    topo = "topology"
    node_id = [_path_param("qkdn_id", _UUID)]
    link_id = [_path_param("qkdl_id", _UUID)]
    paths: dict[str, Any] = {
        f"{API_PREFIX}/qkd_network": {"get": _op(
            "get_network", "The whole network: nodes, physical links, service links",
            {"200": _json("network", _ref("Network"))}, tag=topo)},
        f"{API_PREFIX}/qkd_network/nodes": {"get": _op(
            "list_nodes", "Nodes with interfaces and details",
            {"200": _json("nodes", _ref("NodeList"))}, tag=topo)},
        f"{API_PREFIX}/qkd_network/nodes/{{qkdn_id}}": {"get": _op(
            "get_node", "One node", {"200": _json("node", _ref("Node")),
                                     "404": _problem("unknown node")},
            tag=topo, params=node_id)},
        f"{API_PREFIX}/qkd_network/links": {"get": _op(
            "list_links", "Physical links with live skr/eskr/QBER/key store",
            {"200": _json("links", _ref("PhysLinkList"))}, tag=topo)},
        f"{API_PREFIX}/qkd_network/links/{{qkdl_id}}": {
            "get": _op("get_link", "One physical link",
                       {"200": _json("link", _ref("PhysLink")), "404": _problem("unknown")},
                       tag=topo, params=link_id),
            "patch": _op("update_link", "Enable/disable a link, correct fibre data",
                         {"200": _json("link", _ref("PhysLink")), "404": _problem("unknown")},
                         tag=topo, params=link_id, body="PhysLinkPatch")},
        f"{API_PREFIX}/qkd_network/service_links": {"get": _op(
            "list_service_links", "Service links (active key-association sessions)",
            {"200": _json("service links", _ref("ServiceLinkList"))}, tag=topo)},
        f"{API_PREFIX}/qkd_network/service_links/{{qkdl_id}}": {"get": _op(
            "get_service_link", "One service link",
            {"200": _json("service link", _ref("ServiceLink")), "404": _problem("unknown")},
            tag=topo, params=link_id)},
        f"{API_PREFIX}/sessions": {"get": _op(
            "list_sessions", "Sessions (= service links)",
            {"200": _json("sessions", _ref("ServiceLinkList"))}, tag="sessions")},
        f"{API_PREFIX}/sessions/{{qkdl_id}}": {
            "get": _op("get_session", "Inspect a session",
                       {"200": _json("session", _ref("ServiceLink")),
                        "404": _problem("unknown")}, tag="sessions", params=link_id),
            "delete": _op("delete_session", "Close a session (close_svc_link)",
                          {"204": {"description": "closed"}, "404": _problem("unknown")},
                          tag="sessions", params=link_id)},
        f"{API_PREFIX}/sessions/{{qkdl_id}}/close": {"post": _op(
            "close_session", "Close a session with a reason (close_svc_link)",
            {"200": _json("closed", {"type": "object", "properties": {
                "qkdl_id": _UUID, "closed": {"type": "boolean"}}}),
             "404": _problem("unknown")},
            tag="sessions", params=link_id, body="Reason", body_required=False)},
        f"{API_PREFIX}/sessions/{{qkdl_id}}/restore": {"post": _op(
            "restore_session", "Compute a new path now (restore_svc_link)",
            {"200": _json("new paths", {"type": "object", "properties": {
                "qkdl_id": _UUID, "paths": _ref("Paths")}}),
             "404": _problem("unknown"), "409": _problem("no path")},
            tag="sessions", params=link_id)},
        f"{API_PREFIX}/events": {"get": _op(
            "list_events", "Events (controller notifications), oldest first, paged by cursor",
            {"200": _json("events", _ref("EventPage"))}, tag="events",
            params=[*_PAGE_PARAMS, _query("type", {"type": "string", "maxLength": 64,
                                                   "pattern": "^[a-z_]+(,[a-z_]+)*$"},
                                          "only these notification names (comma-separated)")])},
        f"{API_PREFIX}/events/stream": {"get": {
            "operationId": "stream_events", "tags": ["events"],
            "summary": "Events as a server-sent event stream (id = seq; Last-Event-ID resumes)",
            "parameters": [_query("after", {"type": "integer", "minimum": 0, "maximum": 2**53},
                                  "start after this sequence number (default: now)")],
            "responses": {"200": {"description": "text/event-stream",
                                  "content": {"text/event-stream": {"schema": {
                                      "type": "string"}}}},
                          "400": _problem("a parameter does not match the schema"),
                          "401": _problem("no valid operator credentials"),
                          "503": _problem("too many open streams")}}},
        f"{API_PREFIX}/alarms": {"get": _op(
            "list_alarms", "Alarm events; active=true: raised and not cleared",
            {"200": _json("alarms", _ref("AlarmList"))}, tag="events",
            params=[*_PAGE_PARAMS, _query("active", {"type": "boolean"},
                                          "only alarms not cleared since")])},
        f"{API_PREFIX}/faults": {
            "get": _op("list_faults", "Fault state of every physical link (digital twin)",
                       {"200": _json("faults", _ref("LinkFaults")),
                        "501": _problem("no digital twin attached")}, tag="faults"),
            "post": _op("inject_fault", "Inject a fault or attack (the twin's fault actions)",
                        {"202": _json("accepted", _ref("FaultResult")),
                         "404": _problem("unknown node or link"),
                         "501": _problem("no digital twin attached")},
                        tag="faults", body="FaultAction")},
        f"{API_PREFIX}/status": {"get": _op(
            "get_status", "Orchestrator status: controller reachability, event counts",
            {"200": _json("status", _ref("Status"))}, tag="status")},
    }
    paths.update(_access_paths("users", "name", _ENTRY_NAME, "User", True))
    paths.update(_access_paths("applications", "sae_id", _SAE_ID, "Application", True))
    paths.update(_access_paths("sla_profiles", "name", _ENTRY_NAME, "SlaProfile", False))
    return paths


def build_openapi(version: str = "0.1.0") -> dict[str, Any]:
    """The OpenAPI document (a fresh copy each call)."""
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {
            "title": "qkdn orchestrator",
            "version": version,
            "description": "North-bound REST API of a qkdn QKD network: topology and inventory "
                           "in the shapes of ETSI GS QKD 018, users/applications/SLA profiles, "
                           "sessions, events and alarms, faults of the digital twin. Errors are "
                           "RFC 9457 problem details.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"operatorCertificate": []}],
        "paths": _build_paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "the token in DIR/orchestrator/token"},
                "operatorCertificate": {"type": "mutualTLS",
                                        "description": "client certificate of the network CA "
                                                       "with OU=operator (HTTPS only)"},
            },
        },
    })
