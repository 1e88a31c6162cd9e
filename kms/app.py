"""The KM's WSGI app: ETSI 014 and 004 for SAEs, the relay for KMs; one error translation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from qkdn.structured_logging import unbind_session

if TYPE_CHECKING:
    from kms.key_manager import KeyManager


def create_app(km: KeyManager) -> Flask:
    from kms import etsi014, relay_api
    app = Flask(f"km-{km.node_name}")
    app.config["KM"] = km
    app.json = BoundedJSONProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider
    app.register_blueprint(etsi014.blueprint)
    from kms import etsi004
    app.register_blueprint(etsi004.create_blueprint(km))
    app.register_blueprint(relay_api.blueprint)
    from kms import api_description
    app.register_blueprint(api_description.blueprint)
    app.register_error_handler(HTTPException, _http_error)

    @app.teardown_request
    def _forget_session(_exc: BaseException | None) -> None:
        unbind_session()   # cheroot reuses its threads: no session context leaks to the next

    # the relay's hop calls (kms/relay_api.py) and the 014 key calls
    # (kms/etsi014_fast_path.py) skip Flask, with the same answers
    from kms.etsi014_fast_path import KeyRouteDispatch
    relay_first = relay_api.RelayRouteDispatch(km, app.wsgi_app)
    app.wsgi_app = KeyRouteDispatch(km, relay_first)  # type: ignore[method-assign]
    return app


class BoundedJSONProvider(DefaultJSONProvider):
    """JSON that fails as a client error: a document nested past the parser's recursion limit
    is a ``ValueError`` (→ 400 through ``get_json``), not an uncaught ``RecursionError``."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def _http_error(exc: HTTPException):
    """Routing errors (404, 405...) in the APIs' error shape, JSON like every other answer."""
    return jsonify({"message": exc.description or exc.name}), exc.code
