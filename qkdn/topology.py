"""Topology files: the nodes, physical links (with their physics), applications (SAEs), users
and SLA profiles of a QKD network, loaded from YAML or TOML into frozen values.

The schema is documented in ``docs/topology.md``. Identifiers that the file leaves out are
derived deterministically from the topology's name, so the same file always yields the same
``qkdn_id`` / ``qkdl_id`` values.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qkdn.errors import ConfigError
from qkdn.sla import SlaProfile

#: Namespace for the deterministic uuid5 identifiers of nodes and links.
QKDN_UUID_NAMESPACE = uuid.UUID("6a1f3e52-6c4b-5d1e-9b7e-2f0c4a8d9e11")

LINK_MODES = ("rate", "protocol")


@dataclass(frozen=True)
class Node:
    name: str
    qkdn_id: str
    location: str = ""
    netconf_port: int = 0  #: 0 = ephemeral
    km_port: int = 0  #: HTTPS port of the KM (ETSI 014, 004, relay); 0 = ephemeral


@dataclass(frozen=True)
class Link:
    """A physical QKD link between ``a`` (transmitter end) and ``b`` (receiver end)."""

    a: str
    b: str
    qkdl_id: str
    length_km: float
    preset: str = "reference"
    mode: str = "rate"
    params: Mapping[str, float] = field(default_factory=dict)

    def ends(self) -> tuple[str, str]:
        return (self.a, self.b)

    def peer_of(self, node: str) -> str:
        if node == self.a:
            return self.b
        if node == self.b:
            return self.a
        raise ValueError(f"node {node!r} is not an end of link {self.a}-{self.b}")


@dataclass(frozen=True)
class User:
    name: str
    sla: str
    allowed_peers: tuple[str, ...] = ("*",)  #: user names this user's apps may reach
    revoked: bool = False


@dataclass(frozen=True)
class Sae:
    """A secure application entity (ETSI 014 SAE / 004 application) living on a node."""

    sae_id: str
    node: str
    user: str


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    saes: tuple[Sae, ...] = ()
    users: tuple[User, ...] = ()
    slas: tuple[SlaProfile, ...] = ()
    description: str = ""

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def links_of(self, name: str) -> list[Link]:
        return [link for link in self.links if name in link.ends()]

    def interface_id(self, node: str, link: Link) -> int:
        """``qkdi_id`` of ``node``'s end of ``link``: 1, 2, … in the order links are listed."""
        return self.links_of(node).index(link) + 1

    def saes_of(self, name: str) -> list[Sae]:
        return [sae for sae in self.saes if sae.node == name]


def derive_id(topology_name: str, *parts: str) -> str:
    return str(uuid.uuid5(QKDN_UUID_NAMESPACE, "/".join((topology_name, *parts))))


#: libyaml's safe loader when PyYAML has it: the same documents and values, ~7 times less CPU
#: (the paper topology: 12 ms in pure Python, read by ``qkdn up``, the supervisor and every
#: node as it starts)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_topology(path: str | Path) -> Topology:
    """Read a ``.yaml``/``.yml`` or ``.toml`` topology file; raise ConfigError on any defect."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read topology {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raw = yaml.load(text, Loader=_SAFE_LOADER)  # a safe loader (no Python objects)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a topology is a mapping with nodes and links")
    return parse_topology(raw, default_name=path.stem)


def parse_topology(raw: Mapping[str, Any], *, default_name: str = "network") -> Topology:
    name = str(raw.get("name", default_name))
    defaults = raw.get("defaults") or {}
    link_defaults = defaults.get("link") or {}

    nodes = []
    for i, entry in enumerate(_list(raw, "nodes")):
        entry = _mapping(entry, f"nodes[{i}]")
        node_name = str(_required(entry, "name", f"nodes[{i}]"))
        qkdn_id = str(entry.get("qkdn_id") or derive_id(name, "node", node_name))
        _check_uuid(qkdn_id, f"nodes[{i}].qkdn_id")
        nodes.append(Node(node_name, qkdn_id, str(entry.get("location", "")),
                          int(entry.get("netconf_port", 0)), int(entry.get("km_port", 0))))
    _unique([n.name for n in nodes], "node name")
    _unique([n.qkdn_id for n in nodes], "qkdn_id")
    names = {n.name for n in nodes}
    if not nodes:
        raise ConfigError("a topology needs at least one node")

    links = []
    for i, entry in enumerate(_list(raw, "links")):
        entry = _mapping(entry, f"links[{i}]")
        where = f"links[{i}]"
        a, b = str(_required(entry, "a", where)), str(_required(entry, "b", where))
        for end in (a, b):
            if end not in names:
                raise ConfigError(f"{where}: unknown node {end!r}")
        if a == b:
            raise ConfigError(f"{where}: a link joins two different nodes")
        merged = {**link_defaults, **entry}
        qkdl_id = str(merged.get("qkdl_id") or derive_id(name, "link", *sorted((a, b))))
        _check_uuid(qkdl_id, f"{where}.qkdl_id")
        mode = str(merged.get("mode", "rate"))
        if mode not in LINK_MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(LINK_MODES)}")
        length = float(_required(merged, "length_km", where))
        if not 0 < length <= 1000:
            raise ConfigError(f"{where}: length_km must be in (0, 1000]")
        params = {str(k): float(v) for k, v in (merged.get("params") or {}).items()}
        link = Link(a, b, qkdl_id, length, str(merged.get("preset", "reference")), mode, params)
        link_parameters(link, where)
        links.append(link)
    _unique([frozenset(link.ends()) for link in links], "link between the same nodes")

    slas = []
    for i, entry in enumerate(_list(raw, "slas")):
        entry = _mapping(entry, f"slas[{i}]")
        try:
            slas.append(SlaProfile(name=str(_required(entry, "name", f"slas[{i}]")),
                                   **{k: v for k, v in entry.items() if k != "name"}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"slas[{i}]: {exc}") from exc
    _unique([s.name for s in slas], "SLA name")
    sla_names = {s.name for s in slas}

    users = []
    for i, entry in enumerate(_list(raw, "users")):
        entry = _mapping(entry, f"users[{i}]")
        sla = str(_required(entry, "sla", f"users[{i}]"))
        if sla not in sla_names:
            raise ConfigError(f"users[{i}]: unknown SLA {sla!r}")
        peers = entry.get("allowed_peers", ["*"])
        users.append(User(str(_required(entry, "name", f"users[{i}]")), sla,
                          tuple(str(p) for p in peers), bool(entry.get("revoked", False))))
    _unique([u.name for u in users], "user name")
    user_names = {u.name for u in users}

    saes = []
    for i, entry in enumerate(_list(raw, "saes")):
        entry = _mapping(entry, f"saes[{i}]")
        where = f"saes[{i}]"
        sae = Sae(str(_required(entry, "id", where)), str(_required(entry, "node", where)),
                  str(_required(entry, "user", where)))
        if sae.node not in names:
            raise ConfigError(f"{where}: unknown node {sae.node!r}")
        if sae.user not in user_names:
            raise ConfigError(f"{where}: unknown user {sae.user!r}")
        saes.append(sae)
    _unique([s.sae_id for s in saes], "SAE id")

    return Topology(name, tuple(nodes), tuple(links), tuple(saes), tuple(users), tuple(slas),
                    str(raw.get("description", "")))


def link_parameters(link: Link, where: str = "link") -> Any:
    """The twin's physics parameters of ``link`` (preset + overrides); ConfigError if invalid."""
    from qkd_twin.errors import TwinError
    from qkd_twin.physics import preset

    try:
        return preset(link.preset, link.length_km, **link.params)
    except TwinError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{where}: unknown physics parameter in params "
                          f"({str(exc).split('argument')[-1].strip()})") from exc


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise ConfigError(f"'{key}' must be a list")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    return value


def _required(entry: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise ConfigError(f"{where}: '{key}' is required")
    return entry[key]


def _unique(values: list[Any], what: str) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"duplicate {what}: {value!r}" if not isinstance(value, frozenset)
                              else f"duplicate {what}: {'-'.join(sorted(value))}")
        seen.add(value)


def _check_uuid(value: str, where: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not a UUID") from exc
