"""RFC 6241 §8.3 candidate configuration: a scratch copy of running that edits go to until
``<commit>`` applies it to running as a whole (atomically, validated by libyang) or
``<discard-changes>`` drops it.

While nobody has touched it the candidate simply mirrors running (it is rebuilt from running
when read), so changes made directly on running are never hidden by a stale candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lxml import etree

from qkdn.namespaces import NETCONF_BASE_NS

_BASE = f"{{{NETCONF_BASE_NS}}}"


class ConfigStore(Protocol):
    """The part of :class:`qkd_agent.datastore.Datastore` the candidate uses."""

    def get_config(self, filter: etree._Element | None) -> etree._Element: ...

    def edit_config(self, config: etree._Element, *, default_operation: str = "merge",
                    test_option: str = "test-then-set",
                    error_option: str = "stop-on-error") -> None: ...

    def validate(self, config: etree._Element | None = None) -> None: ...

    def running_json(self) -> dict: ...


def data_to_config(data: etree._Element) -> etree._Element:
    """A ``<data>`` reply element turned into a ``<config>`` element with the same content."""
    config = etree.Element(_BASE + "config", nsmap={None: NETCONF_BASE_NS})
    for child in data:
        if isinstance(child.tag, str):
            config.append(etree.fromstring(etree.tostring(child)))
    return config


class CandidateStore:
    """The shared candidate datastore of one agent (used from the agent's loop only)."""

    def __init__(self, running: ConfigStore, make_store: Callable[[dict], ConfigStore]) -> None:
        self._running = running
        self._make_store = make_store
        self._store: ConfigStore | None = None

    @property
    def modified(self) -> bool:
        """True once an edit reached the candidate and was neither committed nor discarded."""
        return self._store is not None

    def view(self) -> ConfigStore:
        """The candidate to read: the modified copy, or running itself while unmodified."""
        return self._store if self._store is not None else self._running

    def for_edit(self) -> ConfigStore:
        """The candidate to change (a copy of running is made on the first edit)."""
        if self._store is None:
            self._store = self._make_store(self._running.running_json())
        return self._store

    def config(self) -> etree._Element:
        """The whole candidate configuration as a ``<config>`` element."""
        return data_to_config(self.view().get_config(None))

    def discard(self) -> None:
        """Forget the changes: the candidate mirrors running again."""
        self._store = None
