"""The OpenAPI descriptions of the KM's application APIs, served to any client with a valid
certificate: ``GET /api/v1/openapi/etsi014.json`` and ``/api/v1/openapi/etsi004.json``.

The files live in ``kms/openapi/``: ETSI GS QKD 014 V1.1.1 (data formats of its clause 6) and
qkdn's JSON binding of ETSI GS QKD 004 (docs/kms.md). The reliability suite fuzzes the KM
from them (tests/reliability/rest_fuzz.py).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, jsonify

OPENAPI_DIR = Path(__file__).with_name("openapi")
API_NAMES = ("etsi014", "etsi004")

blueprint = Blueprint("api_description", __name__, url_prefix="/api/v1/openapi")


@cache
def load_description(name: str) -> dict[str, Any]:
    """The OpenAPI document ``name`` (``etsi014`` or ``etsi004``) as a dict."""
    if name not in API_NAMES:
        raise KeyError(name)
    return json.loads((OPENAPI_DIR / f"{name}.json").read_text())


@blueprint.get("/<name>.json")
def get_description(name: str):
    if name not in API_NAMES:
        abort(404)
    return jsonify(load_description(name))
