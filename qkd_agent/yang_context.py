"""The libyang context of the agent: every YANG module of ``yang/`` loaded and implemented.

A :class:`libyang.Context` is not thread-safe; the agent builds one per process and uses it
from its event loop only. ``ietf-yang-types`` and ``ietf-inet-types`` are built into libyang.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import libyang
from _libyang import ffi, lib

from qkdn.errors import ConfigError
from qkdn.namespaces import ETSI_TYPES_MODULE, YANG_DIR


def _keep_error_paths() -> None:
    """Ask libyang to record the data/schema path of every error it stores.

    The Python bindings register no log callback and leave path generation off, which drops
    the location we need for ``<error-path>``. The setting is process-wide and harmless for
    other users of libyang (they only see richer messages)."""
    lib.ly_set_log_clb(ffi.NULL, True)


def load_context(yang_dir: Path | str | None = None, *,
                 modules: Iterable[str] | None = None) -> libyang.Context:
    """A libyang context with every ``*.yang`` module of ``yang_dir`` implemented.

    ``yang_dir`` defaults to :data:`qkdn.namespaces.YANG_DIR` (the repository's ``yang/``).
    Modules are implemented (not only imported) so that identities of
    ``etsi-qkd-node-types`` validate as identityref values; all features are enabled.
    Raises :class:`qkdn.errors.ConfigError` when the folder has no module or one does not
    compile.

    ``modules`` implements only those (plus ``etsi-qkd-node-types``); what they import is
    loaded as imported only, so its data nodes (e.g. the mandatory ``qkd_node/qkdn_id``) are
    not part of the datastore. The controller's north-bound server uses this.
    """
    folder = Path(yang_dir) if yang_dir is not None else YANG_DIR
    files = sorted(folder.glob("*.yang"))
    if not files:
        raise ConfigError(f"no YANG module in {folder}")
    _keep_error_paths()
    ctx = libyang.Context(str(folder))
    names = {file.stem.split("@", 1)[0]: file.name for file in files}
    if modules is not None:
        wanted = set(modules) | {ETSI_TYPES_MODULE}
        names = {name: file for name, file in names.items() if name in wanted}
    for name, file_name in names.items():
        try:
            module = ctx.load_module(name)
            module.feature_enable_all()
        except libyang.LibyangError as exc:
            raise ConfigError(f"YANG module {file_name} does not load: {exc}") from exc
    return ctx


def module_namespace(module: libyang.Module) -> str:
    """The XML namespace of a module (the bindings expose no accessor for it)."""
    return ffi.string(module.cdata.ns).decode()
