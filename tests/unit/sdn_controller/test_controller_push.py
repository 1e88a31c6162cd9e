import threading

import pytest

from sdn_controller.admission_control import AdmissionControl, ConfigRequest, Configured, Rerouted
from sdn_controller.errors import PushError
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.push import plan_reroute_push, plan_session_push, push_all, remove_all
from sdn_controller.routing import GraphRouter
from sdn_controller.session_config import QoS
from sdn_controller.user_db import SlaProfile, UserDb

N = {name: f"00000000-0000-0000-0000-0000000000{i:02d}" for i, name in enumerate("abcde")}


@pytest.fixture
def ac():
    db = UserDb.open()
    db.add_sla(SlaProfile("std", max_bps=10**6, max_priority=5))
    for name in "abcde":
        db.add_user(f"u{name}", "std")
        db.add_application(f"sae-{name}", f"u{name}", N[name], N[name])
    links = {f"{x}{y}": LinkMetrics(f"10000000-0000-0000-0000-0000000000{i:02d}", N[x], N[y],
                                    LinkStatus.ACTIVE, skr=100_000)
             for i, (x, y) in enumerate(["ab", "bc", "ad", "de", "ec"])}
    sids = iter(f"5e55105e-0000-4000-8000-0000000000{i:02d}" for i in range(99))
    control = AdmissionControl(db, GraphRouter(lambda: links.values()), clock=lambda: 0.0,
                               new_session_id=lambda: next(sids))
    control.links = links
    return control


def session(ac):
    ac.request_config(ConfigRequest(N["a"], "sae-a", "sae-c", "ua", "std", QoS(max_bps=1000)))
    out = ac.request_config(ConfigRequest(N["c"], "sae-c", "sae-a", "uc", "std",
                                          QoS(max_bps=1000)))
    assert isinstance(out, Configured)
    return out


@pytest.fixture
def nodes(memory_node):
    def make(**options):
        return {N[n]: memory_node(N[n], **options.get(n, {})) for n in "abcde"}
    return make


def test_push_configures_every_node_of_the_path(ac, nodes):
    out = session(ac)
    nodes_ = nodes()
    result = push_all(plan_session_push(out.configs), nodes_)
    assert result.ok and set(result.applied) == {N["a"], N["b"], N["c"]}
    assert len(nodes_[N["a"]].entries) == 2 and len(nodes_[N["b"]].entries) == 2
    assert nodes_[N["d"]].entries == {}
    result.raise_for_failure()


def test_one_failure_rolls_back_the_others(ac, nodes):
    out = session(ac)
    nodes_ = nodes(b={"fail_apply": True})
    result = push_all(plan_session_push(out.configs), nodes_)
    assert not result.ok and set(result.failures) == {N["b"]}
    assert "operation-failed" in result.reason()
    assert set(result.rolled_back) == {N["a"], N["c"]}
    assert all(n.entries == {} for n in nodes_.values())
    with pytest.raises(PushError) as err:
        result.raise_for_failure()
    assert err.value.node_id == N["b"]
    # admission control turns it into a refusal that releases the reservation
    ended = ac.fail(out.session_id, result.reason())
    assert ended.status == 4 and len(ac.ledger) == 0


def test_rollback_failure_is_reported(ac, nodes):
    out = session(ac)
    result = push_all(plan_session_push(out.configs),
                      nodes(b={"fail_apply": True}, a={"fail_rollback": True}))
    assert set(result.rollback_failures) == {N["a"]} and result.rolled_back == (N["c"],)


def test_unreachable_node_means_nothing_is_touched(ac, nodes):
    out = session(ac)
    nodes_ = nodes()
    del nodes_[N["b"]]
    result = push_all(plan_session_push(out.configs), nodes_)
    assert not result.ok and "no NETCONF session" in result.failures[N["b"]]
    assert all(n.calls == [] for n in nodes_.values())


def test_pushes_go_out_in_parallel(ac, nodes):
    """Each node's edit-config waits at a barrier for the other two: only concurrent calls
    can pass it (sequential calls would break it after its timeout)."""
    out = session(ac)
    nodes_ = nodes()
    barrier = threading.Barrier(3, timeout=5)
    for node in (N["a"], N["b"], N["c"]):
        original = nodes_[node].edit_config

        def edit(config, original=original):
            barrier.wait()
            original(config)
        nodes_[node].edit_config = edit
    result = push_all(plan_session_push(out.configs), nodes_)
    assert result.ok and not barrier.broken


def test_remove_all_collects_confirmations(ac, nodes):
    out = session(ac)
    nodes_ = nodes()
    push_all(plan_session_push(out.configs), nodes_)
    ended = ac.close(out.session_id, N["a"])
    nodes_[N["c"]].fail_apply = True
    result = remove_all(ended.configs, nodes_)
    assert set(result.confirmed) == {N["a"], N["b"]} and set(result.failures) == {N["c"]}
    assert nodes_[N["a"]].entries == {} and nodes_[N["b"]].entries == {}
    for node in result.confirmed:
        ac.confirm_deletion(out.session_id, node)
    assert ac.session(out.session_id).pending_deletions == {N["c"]}


def test_reroute_push_then_stale_deletion_and_rollback_restores(ac, nodes):
    out = session(ac)
    nodes_ = nodes()
    push_all(plan_session_push(out.configs), nodes_)
    before = {n: dict(node.entries) for n, node in nodes_.items()}
    from dataclasses import replace
    ac.links["bc"] = replace(ac.links["bc"], down_reason="cut")
    moved = ac.reroute(out.session_id)
    assert isinstance(moved, Rerouted)
    # a failing reroute push puts every node back exactly as it was
    failing = dict(nodes_)
    nodes_[N["e"]].fail_apply = True
    result = push_all(plan_reroute_push(moved.new_configs, out.configs), failing)
    assert not result.ok
    assert {n: node.entries for n, node in nodes_.items()} == before
    nodes_[N["e"]].fail_apply = False
    assert push_all(plan_reroute_push(moved.new_configs, out.configs), nodes_).ok
    assert remove_all(moved.stale_configs, nodes_).failures == {}
    assert nodes_[N["b"]].entries == {}  # left the path
    apps_a = [k for k in nodes_[N["a"]].entries if k[0] == "qkd_app"]
    links_a = [k for k in nodes_[N["a"]].entries if k[0] == "qkd_link"]
    assert len(apps_a) == 1 and len(links_a) == 1  # old virtual link gone, new one there
    assert set(nodes_[N["d"]].entries) and set(nodes_[N["e"]].entries)


class _Pending:
    def __init__(self, log, node, fail):
        self.log, self.node, self.fail = log, node, fail

    def wait(self):
        self.log.append(("wait", self.node))
        if self.fail:
            raise RuntimeError("rpc-error: refused")


class _Pipelined:
    """A configurator that sends now and answers later (as the southbound's sessions)."""

    def __init__(self, node, log, *, fail=False, unsendable=False):
        self.node_id, self.log, self.fail, self.unsendable = node, log, fail, unsendable
        self.payloads = []

    def send_edit_config(self, config):
        if self.unsendable:
            raise RuntimeError("no NETCONF session to this node")
        self.log.append(("send", self.node_id))
        self.payloads.append(config.get("which"))
        return _Pending(self.log, self.node_id, self.fail and config.get("which") == "apply")

    def edit_config(self, config):
        raise AssertionError("a pipelined configurator is never called blocking")

    def rollback(self, undo):
        raise AssertionError("a pipelined rollback is an edit-config of the undo payload")


def _pushes(nodes):
    from lxml import etree

    from sdn_controller.push import NodePush

    apply, undo = etree.Element("config", which="apply"), etree.Element("config", which="undo")
    return [NodePush(n, apply, undo) for n in nodes]


def test_pipelined_configurators_get_every_rpc_sent_before_any_reply_is_awaited():
    from sdn_controller.push import PipelinedConfigurator

    log = []
    confs = {n: _Pipelined(n, log) for n in ("src", "r1", "r2", "dst")}
    assert all(isinstance(c, PipelinedConfigurator) for c in confs.values())
    result = push_all(_pushes(confs), confs)
    assert result.ok and set(result.applied) == set(confs)
    assert [kind for kind, _ in log] == ["send"] * 4 + ["wait"] * 4


def test_pipelined_failure_rolls_back_the_others_with_their_undo_payload():
    log = []
    confs = {"src": _Pipelined("src", log), "relay": _Pipelined("relay", log, fail=True),
             "dst": _Pipelined("dst", log)}
    result = push_all(_pushes(confs), confs)
    assert not result.ok and set(result.failures) == {"relay"}
    assert "refused" in result.failures["relay"]
    assert set(result.rolled_back) == {"src", "dst"} and not result.rollback_failures
    assert confs["src"].payloads == ["apply", "undo"] and confs["relay"].payloads == ["apply"]


class _Blocking:
    def __init__(self, node):
        self.node_id, self.calls = node, []

    def edit_config(self, config):
        self.calls.append("edit")

    def rollback(self, undo):
        self.calls.append("rollback")


def test_pipelined_and_blocking_configurators_mix_and_an_unsendable_rpc_fails_its_node():
    log = []
    blocking = _Blocking("blocking")
    confs = {"p": _Pipelined("p", log), "gone": _Pipelined("gone", log, unsendable=True),
             "blocking": blocking}
    result = push_all(_pushes(confs), confs)
    assert result.failures == {"gone": "no NETCONF session to this node"}
    assert set(result.rolled_back) == {"p", "blocking"}
    assert confs["p"].payloads == ["apply", "undo"] and blocking.calls == ["edit", "rollback"]


class _Recording:
    """Records what each kind of configurator receives."""

    def __init__(self, node, log, *, pipelined):
        self.node_id, self.log = node, log
        if pipelined:
            self.send_edit_config = self._send

    def _send(self, config):
        self.log.append(config)
        return _Pending([], self.node_id, False)

    def edit_config(self, config):
        self.log.append(config)

    def rollback(self, undo):
        self.log.append(undo)


def test_a_session_push_sends_text_to_pipelined_and_elements_to_blocking_configurators(ac):
    from lxml import etree

    from sdn_controller.config_payloads import session_config_payload, to_xml

    out = session(ac)
    sent: list = []
    got: list = []
    confs = {c.node_id: _Recording(c.node_id, sent if i % 2 else got, pipelined=bool(i % 2))
             for i, c in enumerate(out.configs)}
    assert push_all(plan_session_push(out.configs), confs).ok
    expected = {c.node_id: to_xml(session_config_payload(c)) for c in out.configs}
    assert sent and all(isinstance(payload, str) for payload in sent)
    assert got and all(isinstance(payload, etree._Element) for payload in got)
    assert sorted(sent + [to_xml(e) for e in got]) == sorted(expected.values())
