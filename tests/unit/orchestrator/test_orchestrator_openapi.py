"""The OpenAPI document and the request validation built on its schemas."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest

from orchestrator.errors import InvalidRequest
from orchestrator.openapi import build_openapi
from orchestrator.request_validation import SchemaValidator, check_value, json_pointer


def test_every_schema_is_valid_json_schema_2020_12() -> None:
    document = build_openapi()
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    json.dumps(document)  # serialisable as /openapi.json


def test_every_operation_documents_its_problems_and_has_an_id() -> None:
    document = build_openapi()
    ids = set()
    for path, item in document["paths"].items():
        for method, op in item.items():
            assert op["operationId"] not in ids
            ids.add(op["operationId"])
            assert {"400", "401"} <= set(op["responses"]), (method, path)
            problems = [code for code in op["responses"] if code >= "400"]
            for code in problems:
                content = op["responses"][code]["content"]
                assert "application/problem+json" in content, (method, path, code)
    assert len(ids) >= 35


def test_validation_names_each_bad_field() -> None:
    validator = SchemaValidator(build_openapi())
    validator.check("UserCreate", {"name": "bank-a", "sla_profile": "premium"})
    with pytest.raises(InvalidRequest) as caught:
        validator.check("SlaProfileCreate", {"name": "x", "max_bandwidth": 0,
                                             "path_restoration": {"restoration_type": "SOON"}})
    pointers = {e.pointer for e in caught.value.errors}
    assert pointers == {"/max_bandwidth", "/path_restoration/restoration_type"}
    with pytest.raises(InvalidRequest):
        validator.check("FaultAction", {"action": "eavesdrop", "link": {"nodes": ["0", "1"]}})
    validator.check("FaultAction", {"action": "eavesdrop", "value": 0.3,
                                    "link": {"nodes": ["0", "1"]}})
    validator.check("FaultAction", {"action": "node-kill", "node": "3"})
    with pytest.raises(InvalidRequest):
        validator.check("ApplicationCreate", {"sae_id": "bad id", "user": "u",
                                              "qkdn_id": "00000000-0000-4000-8000-000000000000"})


def test_pointers_and_single_values() -> None:
    assert json_pointer(["a/b", 0, "c~d"]) == "/a~1b/0/c~0d"
    with pytest.raises(InvalidRequest) as caught:
        check_value(0, {"type": "integer", "minimum": 1}, "/query/limit")
    assert caught.value.errors[0].pointer == "/query/limit"
