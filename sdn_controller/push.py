"""All-or-nothing configuration of the KMs of a path, in parallel, with rollback.

Written against the small :class:`NodeConfigurator` protocol, so the NETCONF southbound (one
ncclient session per agent) plugs in unchanged and tests use an in-memory node. A push sends
each node its payload in parallel; if any node fails, every node that already took its
payload is rolled back (also in parallel) and the result names the failures, so admission
control can refuse the session with the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from lxml import etree

from sdn_controller.config_payloads import (
    merge_payloads,
    session_config_payload,
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


@dataclass(frozen=True)
class NodePush:
    """What one node gets (``apply``) and how to take it back (``undo``)."""

    node_id: NodeId
    apply: etree._Element
    undo: etree._Element


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
    """Install ``configs``; undo = delete them."""
    return tuple(NodePush(c.node_id, session_config_payload(c, with_extensions=with_extensions),
                          session_delete_payload(c)) for c in configs)


def plan_reroute_push(new: Iterable[KmConfig], old: Iterable[KmConfig]) -> tuple[NodePush, ...]:
    """Install a rerouted session's ``new`` configs; a node that held an ``old`` one is
    rolled back to it, a node new to the session is rolled back by deletion."""
    before = {c.node_id: c for c in old}
    pushes = []
    for config in new:
        prior = before.get(config.node_id)
        undo = session_delete_payload(config) if prior is None else \
            session_restore_payload(prior, config)
        pushes.append(NodePush(config.node_id, session_config_payload(config), undo))
    return tuple(pushes)


def merge_node_pushes(pushes: Iterable[NodePush]) -> tuple[NodePush, ...]:
    """One push per node: the applies (and undos) of several sessions' pushes to the same
    node merged into one edit-config each (sessions moved together)."""
    by_node: dict[NodeId, list[NodePush]] = {}
    for push in pushes:
        by_node.setdefault(push.node_id, []).append(push)
    return tuple(NodePush(node, merge_payloads([p.apply for p in group]),
                          merge_payloads([p.undo for p in group]))
                 for node, group in by_node.items())


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


def push_all(pushes: Sequence[NodePush], configurators: Mapping[NodeId, NodeConfigurator], *,
             executor: Executor | None = None, first: Collection[NodeId] = ()) -> PushResult:
    """Apply every push in parallel; on any failure roll back the nodes that succeeded.

    Nodes in ``first`` (the relays of a path) are configured in a first parallel wave and
    the others (the ends) only once it succeeded: an end KM answers its application as
    soon as its own configuration lands, and by then every forwarding rule of the path
    must be in place, or its first relay finds no rule at the next hop."""
    failures: dict[NodeId, str] = {}
    calls = {}
    for push in pushes:
        configurator = configurators.get(push.node_id)
        if configurator is None:
            failures[push.node_id] = "no NETCONF session to this node"
        else:
            calls[push.node_id] = (configurator.edit_config, push.apply)
    if failures:  # do not touch any node when one of them cannot even be reached
        return PushResult((), failures)
    waves = ([n for n in calls if n in first], [n for n in calls if n not in first])
    outcome: dict[NodeId, str | None] = {}
    for wave in waves:
        if wave:
            outcome.update(_run_parallel({n: calls[n] for n in wave}, executor))
        if any(err is not None for err in outcome.values()):
            break
    applied = tuple(n for n, err in outcome.items() if err is None)
    failures = {n: err for n, err in outcome.items() if err is not None}
    if not failures:
        return PushResult(applied)
    undo = {p.node_id: p.undo for p in pushes}
    rollback = _run_parallel({n: (configurators[n].rollback, undo[n]) for n in applied},
                             executor)
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
    calls = {node: (configurators[node].edit_config, merge_payloads(group))
             for node, group in payloads.items()}
    outcome = _run_parallel(calls, executor)
    failures.update({n: err for n, err in outcome.items() if err is not None})
    return DeleteResult(tuple(n for n, err in outcome.items() if err is None), failures)
