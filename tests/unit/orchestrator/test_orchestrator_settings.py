"""Settings of the orchestrator process: argument, then QKDN_ORCHESTRATOR_*, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.daemon import orchestrator_child_spec, resolve_settings
from orchestrator.nbi_client import NbiEndpoint
from qkdn.errors import ConfigError

NBI = NbiEndpoint("127.0.0.1", 830, "u", "p")


def test_state_dir_gives_the_token_file(tmp_path: Path) -> None:
    settings = resolve_settings(state_dir=tmp_path, environ={})
    assert settings.token_file == tmp_path / "orchestrator" / "token"
    assert settings.nbi is None and settings.port == 0 and settings.tls_cert is None


def test_environment_then_default(tmp_path: Path) -> None:
    env = {"QKDN_ORCHESTRATOR_PORT": "8443", "QKDN_ORCHESTRATOR_HOST": "0.0.0.0",
           "QKDN_ORCHESTRATOR_TOKEN_FILE": str(tmp_path / "t")}
    settings = resolve_settings(nbi=NBI, environ=env)
    assert (settings.host, settings.port, settings.token_file) == ("0.0.0.0", 8443,
                                                                   tmp_path / "t")
    assert resolve_settings(nbi=NBI, port=9000, environ=env).port == 9000
    with pytest.raises(ConfigError):
        resolve_settings(nbi=NBI, environ={**env, "QKDN_ORCHESTRATOR_PORT": "x"})


def test_inconsistent_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        resolve_settings(environ={})  # neither a state directory nor a controller
    with pytest.raises(ConfigError):
        resolve_settings(nbi=NBI, environ={})  # no token file
    with pytest.raises(ConfigError):
        resolve_settings(nbi=NBI, token_file=tmp_path / "t", tls=True, environ={})
    with pytest.raises(ConfigError):
        resolve_settings(nbi=NBI, token_file=tmp_path / "t", tls_cert=tmp_path / "c",
                         environ={})


def test_tls_from_the_network_ca(tmp_path: Path) -> None:
    settings = resolve_settings(state_dir=tmp_path, environ={"QKDN_ORCHESTRATOR_TLS": "1"})
    assert settings.tls_ca == tmp_path / "pki" / "ca.pem"
    assert settings.tls_cert.exists() and settings.tls_key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "pki" / "operator" / "operator.pem").exists()
    again = resolve_settings(state_dir=tmp_path, tls=True, environ={})
    assert again.tls_cert.read_bytes() == settings.tls_cert.read_bytes()  # reused


def test_child_spec(tmp_path: Path) -> None:
    spec = orchestrator_child_spec(tmp_path)
    assert spec.kind == "orchestrator" and spec.argv[-3:] == ("orchestrator", "--state-dir",
                                                              str(tmp_path))
    assert spec.ready_path == tmp_path / "orchestrator" / "ready.json"
