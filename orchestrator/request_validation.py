"""Validation of request bodies and query parameters against the OpenAPI document's own
schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses it), with ``jsonschema-rs``.

A failure is an :class:`~orchestrator.errors.InvalidRequest` naming every bad field by its
RFC 6901 JSON pointer (``/path_restoration/hold_off_time``), which the edge renders as an
RFC 9457 problem.
"""

from __future__ import annotations

import threading
from typing import Any

import jsonschema_rs

from orchestrator.errors import FieldError, InvalidRequest

MAX_ERRORS = 20


def json_pointer(parts: list[Any]) -> str:
    """RFC 6901 pointer of a path (``~`` → ``~0``, ``/`` → ``~1``)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class SchemaValidator:
    """Validators for the named component schemas of one OpenAPI document (compiled once)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._components = document.get("components", {})
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _validator(self, name: str) -> Any:
        with self._lock:
            validator = self._compiled.get(name)
            if validator is None:
                if name not in self._components.get("schemas", {}):
                    raise KeyError(f"no schema {name!r} in the OpenAPI document")
                schema = {"$ref": f"#/components/schemas/{name}",
                          "components": self._components}
                validator = jsonschema_rs.Draft202012Validator(schema)
                self._compiled[name] = validator
            return validator

    def check(self, name: str, instance: Any, *, where: str = "body") -> None:
        """Raise InvalidRequest listing what in ``instance`` breaks schema ``name``."""
        errors = []
        for error in self._validator(name).iter_errors(instance):
            errors.append(FieldError(json_pointer(list(error.instance_path)), error.message))
            if len(errors) >= MAX_ERRORS:
                break
        if errors:
            first = errors[0]
            at = f" at {first.pointer}" if first.pointer else ""
            raise InvalidRequest(f"the request {where} is invalid{at}: {first.detail}", errors)


def check_value(instance: Any, schema: dict[str, Any], pointer: str) -> None:
    """Validate one value (e.g. a path or query parameter) against an inline schema."""
    validator = jsonschema_rs.Draft202012Validator(schema)
    messages = [e.message for e in validator.iter_errors(instance)]
    if messages:
        raise InvalidRequest(f"{pointer}: {messages[0]}", [FieldError(pointer, messages[0])])
