"""The capabilities the agent advertises in its ``<hello>`` and the module texts it serves
through RFC 6022 ``<get-schema>``.

Every YANG module loaded from the project's ``yang/`` folder (and every module those import)
is advertised with its namespace, name and revision (RFC 6020 §5.6.4), so that a client such
as yangcli or netconf-console2 can fetch the texts it lacks with ``<get-schema>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import libyang
from libyang.util import c2str

from qkdn.namespaces import BASE_1_0, BASE_1_1


class Capability(StrEnum):
    """Protocol capabilities (RFC 6241 §8, RFC 5277, RFC 6022)."""

    BASE_1_0 = BASE_1_0
    BASE_1_1 = BASE_1_1
    WRITABLE_RUNNING = "urn:ietf:params:netconf:capability:writable-running:1.0"
    CANDIDATE = "urn:ietf:params:netconf:capability:candidate:1.0"
    ROLLBACK_ON_ERROR = "urn:ietf:params:netconf:capability:rollback-on-error:1.0"
    XPATH = "urn:ietf:params:netconf:capability:xpath:1.0"
    VALIDATE_1_0 = "urn:ietf:params:netconf:capability:validate:1.0"
    VALIDATE_1_1 = "urn:ietf:params:netconf:capability:validate:1.1"
    NOTIFICATION = "urn:ietf:params:netconf:capability:notification:1.0"
    INTERLEAVE = "urn:ietf:params:netconf:capability:interleave:1.0"
    MONITORING = (
        "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
        "?module=ietf-netconf-monitoring&revision=2010-10-04"
    )


#: Modules libyang loads on its own (internal bookkeeping, not part of our data model).
_LIBYANG_INTERNAL = frozenset(
    {
        "yang",
        "ietf-yang-metadata",
        "ietf-yang-schema-mount",
        "ietf-yang-structure-ext",
        "ietf-datastores",
        "ietf-yang-library",
    }
)


@dataclass(frozen=True)
class SchemaModule:
    """One module the agent serves: identity, capability URI and full YANG text."""

    name: str
    revision: str | None
    namespace: str
    text: str
    features: tuple[str, ...] = ()

    @property
    def capability(self) -> str:
        uri = f"{self.namespace}?module={self.name}"
        if self.revision:
            uri += f"&revision={self.revision}"
        if self.features:
            uri += "&features=" + ",".join(self.features)
        return uri


def collect_schema_modules(ctx: libyang.Context) -> tuple[SchemaModule, ...]:
    """The modules of ``ctx`` loaded from files (the project's ``yang/``) and everything they
    import.

    The text of a module loaded from a file is that file, byte for byte; a module libyang
    carries built in (ietf-inet-types, ietf-yang-types) is printed by libyang.
    """
    by_name = {m.name(): m for m in ctx}
    wanted: list[str] = []

    def visit(name: str) -> None:
        if name in wanted or name in _LIBYANG_INTERNAL or name not in by_name:
            return
        wanted.append(name)
        for imp in by_name[name].imports():
            visit(imp.name())

    for module in ctx:
        if module.filepath():
            visit(module.name())

    result = []
    for name in sorted(wanted):
        module = by_name[name]
        path = module.filepath()
        text = Path(path).read_text(encoding="utf-8") if path else str(module.print_mem("yang"))
        features = tuple(f.name() for f in module.features() if module.feature_state(f.name()))
        result.append(
            SchemaModule(
                name=name,
                revision=c2str(module.cdata.revision),
                namespace=c2str(module.cdata.ns),
                text=text,
                features=features,
            )
        )
    return tuple(result)


def server_capabilities(
    modules: tuple[SchemaModule, ...], *, candidate: bool = False
) -> tuple[str, ...]:
    """Every capability URI of the server's hello, protocol ones first (``:candidate`` only
    when the agent offers a candidate datastore)."""
    protocol = [str(c) for c in Capability if candidate or c is not Capability.CANDIDATE]
    return tuple(protocol) + tuple(m.capability for m in modules)


def find_schema(
    modules: tuple[SchemaModule, ...], identifier: str, version: str | None
) -> list[SchemaModule]:
    """Modules matching a ``<get-schema>`` identifier and optional version (revision)."""
    return [
        m for m in modules if m.name == identifier and (not version or m.revision == version)
    ]
