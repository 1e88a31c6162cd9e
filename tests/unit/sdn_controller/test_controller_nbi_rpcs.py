"""The north-bound RPCs (close_svc_link, restore_svc_link) as operations of the agent's
server: input validated by libyang, the controller's errors mapped to <rpc-error>s. No
sockets: the operations are called directly with a recording controller."""

from __future__ import annotations

import pytest
from lxml import etree

from qkd_agent.operations import RpcCall, ServerState
from qkd_agent.rpc_error import RpcError
from qkd_agent.yang_context import load_context
from qkdn.namespaces import QKDN_INV_NS
from sdn_controller.admission_control import Endpoint, SessionState, SessionView
from sdn_controller.errors import NoPathError, SessionStateError, UnknownSessionError
from sdn_controller.nbi_rpcs import nbi_operations
from sdn_controller.nbi_server import NBI_MODULES
from sdn_controller.routing import Path, Route, RouteLeg
from sdn_controller.session_config import QoS
from sdn_controller.user_db import SlaProfile

SID = "55555551-5555-4555-8555-555555555551"
A, B = "00000001-0000-4000-8000-000000000001", "00000002-0000-4000-8000-000000000002"
LINK = "11111111-1111-4111-8111-111111111111"


def view() -> SessionView:
    sla = SlaProfile("std", 1000)
    route = Route((RouteLeg(Path((A, B), (LINK,), 5000, 1.0), 1000),))
    return SessionView(SID, SessionState.ACTIVE, Endpoint("sae-a", A, "ua", sla, QoS()),
                       "sae-b", Endpoint("sae-b", B, "ub", sla, QoS()), 1000, 0, 60, route,
                       (), 0.0, 0.0, None, "", frozenset())


class Operator:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.calls: list[tuple] = []

    def close_session(self, session_id, detail="closed by operator"):
        self.calls.append(("close", session_id, detail))
        if self.error:
            raise self.error

    def restore_session(self, session_id):
        self.calls.append(("restore", session_id))
        if self.error:
            raise self.error
        return view()


@pytest.fixture(scope="module")
def ctx():
    context = load_context(modules=NBI_MODULES)
    yield context
    context.destroy()


def call(may_write=True) -> RpcCall:
    server = ServerState(datastore=None, modules=())  # type: ignore[arg-type]
    return RpcCall(1, server, lambda message: None, may_write=may_write, username="orch")


def op(name: str, body: str) -> etree._Element:
    return etree.fromstring(f'<{name} xmlns="{QKDN_INV_NS}">{body}</{name}>')


def run(ctx, operator, name, body, **kwargs):
    closed = []
    ops = nbi_operations(ctx, operator, lambda sid, why: closed.append((sid, why)))
    return ops[(QKDN_INV_NS, name)](op(name, body), call(**kwargs)), closed


def test_close_reaches_the_controller_with_its_reason(ctx):
    operator = Operator()
    result, closed = run(ctx, operator, "close_svc_link",
                         f"<qkdl_id>{SID}</qkdl_id><reason>operator request</reason>")
    assert result is None  # <ok/>
    assert operator.calls == [("close", SID, "operator request")]
    assert closed == [(SID, "operator request")]


def test_restore_returns_the_paths_validated(ctx):
    paths, _ = run(ctx, Operator(), "restore_svc_link", f"<qkdl_id>{SID}</qkdl_id>")
    assert etree.QName(paths).localname == "paths"
    hops = paths.findall(f".//{{{QKDN_INV_NS}}}hop")
    assert [h.findtext(f"{{{QKDN_INV_NS}}}qkdn_id") for h in hops] == [A, B]
    assert hops[0].findtext(f"{{{QKDN_INV_NS}}}phys_link") == LINK


@pytest.mark.parametrize("error, tag, app_tag", [
    (UnknownSessionError(SID), "invalid-value", "unknown-svc-link"),
    (SessionStateError(SID, "terminated", "close"), "data-missing", "svc-link-not-active"),
])
def test_close_errors(ctx, error, tag, app_tag):
    with pytest.raises(RpcError) as exc:
        run(ctx, Operator(error), "close_svc_link", f"<qkdl_id>{SID}</qkdl_id>")
    assert (exc.value.tag, exc.value.app_tag) == (tag, app_tag)


def test_restore_without_a_path_is_resource_denied(ctx):
    with pytest.raises(RpcError) as exc:
        run(ctx, Operator(NoPathError(A, B)), "restore_svc_link", f"<qkdl_id>{SID}</qkdl_id>")
    assert (exc.value.tag, exc.value.app_tag) == ("resource-denied", "no-path")


@pytest.mark.parametrize("body, tag", [
    ("<qkdl_id>not-a-uuid</qkdl_id>", "invalid-value"),
    ("", "missing-element"),
    (f"<qkdl_id>{SID}</qkdl_id><extra>1</extra>", "unknown-element"),
])
def test_bad_input_never_reaches_the_controller(ctx, body, tag):
    operator = Operator()
    with pytest.raises(RpcError) as exc:
        run(ctx, operator, "close_svc_link", body)
    assert exc.value.tag == tag, exc.value
    assert operator.calls == []


def test_a_read_only_user_may_not_close(ctx):
    operator = Operator()
    with pytest.raises(RpcError) as exc:
        run(ctx, operator, "close_svc_link", f"<qkdl_id>{SID}</qkdl_id>", may_write=False)
    assert exc.value.tag == "access-denied" and operator.calls == []
