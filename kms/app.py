"""The KM's WSGI app: ETSI 014 and 004 for SAEs, the relay for KMs; one error translation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from qkdn.structured_logging import unbind_session

if TYPE_CHECKING:
    from kms.key_manager import KeyManager


def create_app(km: KeyManager) -> Flask:
    from kms import etsi014, relay_api
    app = Flask(f"km-{km.node_name}")
    app.config["KM"] = km
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider
    app.register_blueprint(etsi014.blueprint)
    from kms import etsi004
    app.register_blueprint(etsi004.create_blueprint(km))
    app.register_blueprint(relay_api.blueprint)

    @app.teardown_request
    def _forget_session(_exc: BaseException | None) -> None:
        unbind_session()   # cheroot reuses its threads: no session context leaks to the next

    return app
