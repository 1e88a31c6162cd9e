"""All-or-nothing configuration of the KMs of a path, in parallel, with rollback.

Written against the small :class:`NodeConfigurator` protocol, so the NETCONF southbound (one
ncclient session per agent) plugs in unchanged and tests use an in-memory node. A push sends
each node its payload in parallel; if any node fails, every node that already took its
payload is rolled back (also in parallel) and the result names the failures, so admission
control can refuse the session with the reason.

A configurator that can also send without waiting (:class:`PipelinedConfigurator`, the
southbound's sessions) gets every RPC of the push sent from the calling thread before any
reply is waited for; blocking configurators run on the executor, one call per thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeAlias, runtime_checkable

from lxml import etree

from sdn_controller.config_payloads import (
    merge_payloads,
    session_config_payload,
    session_config_text,
    session_delete_payload,
    session_restore_payload,
)
from sdn_controller.errors import PushError
from sdn_controller.identifiers import NodeId
from sdn_controller.session_config import KmConfig


class NodeConfigurator(Protocol):
    """One node's configuration channel (the southbound's NETCONF session to its agent)."""

    node_id: NodeId

    def edit_config(self, config: etree._Element) -> None:
        """Apply an RFC 6241 ``<config>``; raise (any exception) if the node refused it."""

    def rollback(self, undo: etree._Element) -> None:
        """Return the node to its state before the push (``undo`` is the inverse payload;
        a NETCONF implementation sends it as an edit-config)."""


class PendingReply(Protocol):
    """An RPC in flight (``sdn_controller.netconf_pipeline.PendingEdit``)."""

    def wait(self) -> None:
        """Block until the reply; raise (any exception) if the node refused the edit."""


@runtime_checkable
class PipelinedConfigurator(Protocol):
    """A :class:`NodeConfigurator` that can send an edit-config and wait for its reply later.
    Its rollback is an edit-config of the undo payload, so rollbacks are pipelined too."""

    node_id: NodeId

    def edit_config(self, config: etree._Element) -> None: ...

    def rollback(self, undo: etree._Element) -> None: ...

    def send_edit_config(self, config: etree._Element | str) -> PendingReply:
        """Send ``config`` (a ``<config>`` element or its serialisation) now; raise at once
        if it cannot even be sent."""


#: a payload (an element, or its serialisation for a pipelined configurator), or a function
#: building it when it is needed
Payload: TypeAlias = etree._Element | str | Callable[[], etree._Element | str]


def _built(payload: Payload) -> etree._Element | str:
    return payload() if callable(payload) else payload


@dataclass(frozen=True)
class NodePush:
    """What one node gets (``apply``) and how to take it back (``undo``). Either may be a
    function building the payload: ``apply`` is then built just before it is sent (a path's
    first KMs get theirs while the controller builds the others'), ``undo`` only when a
    rollback needs it."""

    node_id: NodeId
    apply: Payload
    undo: Payload
    #: ``apply`` already serialised (the same content), for a configurator that sends text
    #: (:class:`PipelinedConfigurator`): no elements built and serialised on the way
    apply_text: Callable[[], str] | None = None

    def apply_payload(self) -> etree._Element:
        payload = _built(self.apply)
        assert not isinstance(payload, str)
        return payload

    def undo_payload(self) -> etree._Element:
        payload = _built(self.undo)
        assert not isinstance(payload, str)
        return payload


@dataclass(frozen=True)
class PushResult:
    applied: tuple[NodeId, ...]
    failures: Mapping[NodeId, str] = field(default_factory=dict)
    rolled_back: tuple[NodeId, ...] = ()
    rollback_failures: Mapping[NodeId, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def reason(self) -> str:
        return "; ".join(f"{node}: {why}" for node, why in sorted(self.failures.items()))

    def raise_for_failure(self) -> None:
        if self.failures:
            node, why = min(self.failures.items())
            raise PushError(node, why if len(self.failures) == 1 else self.reason())


@dataclass(frozen=True)
class DeleteResult:
    confirmed: tuple[NodeId, ...]
    failures: Mapping[NodeId, str] = field(default_factory=dict)


def plan_session_push(configs: Iterable[KmConfig], *, with_extensions: bool = True
                      ) -> tuple[NodePush, ...]:
    """Install ``configs``; undo = delete them (payloads built when needed; a pipelined
    configurator gets the install payload written as text, :func:`session_config_text`)."""
    return tuple(NodePush(c.node_id,
                          partial(session_config_payload, c, with_extensions=with_extensions),
                          partial(session_delete_payload, c),
                          partial(session_config_text, c, with_extensions=with_extensions))
                 for c in configs)


def plan_reroute_push(new: Iterable[KmConfig], old: Iterable[KmConfig]) -> tuple[NodePush, ...]:
    """Install a rerouted session's ``new`` configs; a node that held an ``old`` one is
    rolled back to it, a node new to the session is rolled back by deletion."""
    before = {c.node_id: c for c in old}
    pushes = []
    for config in new:
        prior = before.get(config.node_id)
        undo = partial(session_delete_payload, config) if prior is None else \
            partial(session_restore_payload, prior, config)
        pushes.append(NodePush(config.node_id, partial(session_config_payload, config), undo))
    return tuple(pushes)


def merge_node_pushes(pushes: Iterable[NodePush]) -> tuple[NodePush, ...]:
    """One push per node: the applies (and undos) of several sessions' pushes to the same
    node merged into one edit-config each (sessions moved together)."""
    by_node: dict[NodeId, list[NodePush]] = {}
    for push in pushes:
        by_node.setdefault(push.node_id, []).append(push)
    return tuple(NodePush(node, partial(_merged_apply, group), partial(_merged_undo, group))
                 for node, group in by_node.items())


def _merged(payloads: list[etree._Element]) -> etree._Element:
    return payloads[0] if len(payloads) == 1 else merge_payloads(payloads)


def _merged_apply(pushes: list[NodePush]) -> etree._Element:
    return _merged([p.apply_payload() for p in pushes])


def _merged_undo(pushes: list[NodePush]) -> etree._Element:
    return _merged([p.undo_payload() for p in pushes])


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _run_parallel(calls: Mapping[NodeId, tuple], executor: Executor | None
                  ) -> dict[NodeId, str | None]:
    """Run ``fn(arg)`` per node in parallel; map node → None (ok) or the error text."""
    if not calls:
        return {}
    own = executor is None
    pool = executor or ThreadPoolExecutor(max_workers=min(32, len(calls)),
                                          thread_name_prefix="qkdn-push")
    try:
        futures: dict[NodeId, Future] = {node: pool.submit(fn, arg)
                                         for node, (fn, arg) in calls.items()}
        results: dict[NodeId, str | None] = {}
        for node, future in futures.items():
            exc = future.exception()
            results[node] = None if exc is None else _describe(exc)
        return results
    finally:
        if own:
            pool.shutdown(wait=True)


def _pipelined(configurator: NodeConfigurator) -> bool:
    """Whether ``configurator`` is a :class:`PipelinedConfigurator` (an attribute check:
    ``isinstance`` against a runtime-checkable protocol costs ~13 µs a call)."""
    return callable(getattr(configurator, "send_edit_config", None))


def _call_built(fn: Callable[[etree._Element], None], payload: Payload) -> None:
    built = _built(payload)
    assert not isinstance(built, str), "text payloads go to pipelined configurators only"
    fn(built)


def _edit_all(edits: Mapping[NodeId, tuple[NodeConfigurator, Payload]],
              executor: Executor | None, *, rollback: bool = False
              ) -> dict[NodeId, str | None]:
    """Apply one payload per node in parallel (``rollback``: as the undo of a push); map
    node → None (ok) or the error text (also when building the payload failed).
    Pipelined configurators get their RPC sent from this thread, each payload built just
    before it is sent, after the blocking ones were handed to the executor; then every reply
    is waited for."""
    blocking = {node: (partial(_call_built, conf.rollback if rollback else conf.edit_config),
                       payload)
                for node, (conf, payload) in edits.items() if not _pipelined(conf)}
    pipelined = {node: (conf, payload) for node, (conf, payload) in edits.items()
                 if node not in blocking}
    if not pipelined:
        return _run_parallel(blocking, executor)
    own = bool(blocking) and executor is None
    pool = executor or (ThreadPoolExecutor(max_workers=min(32, len(blocking)),
                                           thread_name_prefix="qkdn-push") if own else None)
    try:
        futures = {node: pool.submit(fn, arg) for node, (fn, arg) in blocking.items()} \
            if pool is not None else {}
        results: dict[NodeId, str | None] = {}
        in_flight: dict[NodeId, PendingReply] = {}
        for node, (conf, payload) in pipelined.items():
            try:
                in_flight[node] = conf.send_edit_config(  # type: ignore[attr-defined]
                    _built(payload))
            except Exception as exc:  # noqa: BLE001 - not even sent: this node failed
                results[node] = _describe(exc)
        # the last one sent first: replies come back roughly in the order sent, so this
        # thread wakes about once for the whole path instead of once per KM (each wake is a
        # GIL hand-over in a process whose session threads are reading the other replies)
        for node, pending in reversed(in_flight.items()):
            try:
                pending.wait()
                results[node] = None
            except Exception as exc:  # noqa: BLE001 - refused, lost, timed out
                results[node] = _describe(exc)
        for node, future in futures.items():
            failure = future.exception()
            results[node] = None if failure is None else _describe(failure)
        return {node: results[node] for node in edits}
    finally:
        if own and pool is not None:
            pool.shutdown(wait=True)


def push_all(pushes: Sequence[NodePush], configurators: Mapping[NodeId, NodeConfigurator], *,
             executor: Executor | None = None) -> PushResult:
    """Apply every push in parallel (one wave: a relay KM whose keys arrive before its rule
    waits for it, ``kms.relay.RULE_WAIT_S``); on any failure roll back the nodes that
    succeeded."""
    failures: dict[NodeId, str] = {}
    edits: dict[NodeId, tuple[NodeConfigurator, Payload]] = {}
    for push in pushes:
        configurator = configurators.get(push.node_id)
        if configurator is None:
            failures[push.node_id] = "no NETCONF session to this node"
        elif push.apply_text is not None and _pipelined(configurator):
            edits[push.node_id] = (configurator, push.apply_text)   # written when sent
        else:
            edits[push.node_id] = (configurator, push.apply)   # built when sent
    if failures:  # do not touch any node when one of them cannot even be reached
        return PushResult((), failures)
    outcome = _edit_all(edits, executor)
    applied = tuple(n for n, err in outcome.items() if err is None)
    failures = {n: err for n, err in outcome.items() if err is not None}
    if not failures:
        return PushResult(applied)
    by_node = {p.node_id: p for p in pushes}
    rollback = _edit_all({n: (configurators[n], by_node[n].undo) for n in applied},
                         executor, rollback=True)
    return PushResult((), failures,
                      tuple(n for n, err in rollback.items() if err is None),
                      {n: err for n, err in rollback.items() if err is not None})


def remove_all(configs: Iterable[KmConfig], configurators: Mapping[NodeId, NodeConfigurator],
               *, executor: Executor | None = None) -> DeleteResult:
    """Send the deletion of ``configs`` to their KMs in parallel and collect confirmations
    (a node without a session or refusing is reported; the others are deleted anyway)."""
    failures: dict[NodeId, str] = {}
    payloads: dict[NodeId, list[etree._Element]] = {}
    for config in configs:
        if configurators.get(config.node_id) is None:
            failures[config.node_id] = "no NETCONF session to this node"
        else:   # several configs for one node (sessions moved together): one edit-config
            payloads.setdefault(config.node_id, []).append(session_delete_payload(config))
    edits = {node: (configurators[node], _merged(group)) for node, group in payloads.items()}
    outcome = _edit_all(edits, executor)
    failures.update({n: err for n, err in outcome.items() if err is not None})
    return DeleteResult(tuple(n for n, err in outcome.items() if err is None), failures)
