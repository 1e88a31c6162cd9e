"""Choosing the SSH transport of the controller's south-bound (no sockets: the connect
functions are replaced by recorders)."""

from __future__ import annotations

import pytest

from qkdn import netconf_libssh
from qkdn.errors import ConfigError
from sdn_controller import southbound
from sdn_controller.daemon import resolve_settings
from sdn_controller.southbound import (
    AgentEndpoint,
    CapabilityError,
    SouthboundConfig,
    Transport,
    connect_agent,
    resolve_transport,
)

GOOD_CAPABILITIES = [
    southbound.NOTIFICATION_CAPABILITY, southbound.INTERLEAVE_CAPABILITY,
    "urn:etsi:qkd:yang:etsi-qkd-node?module=etsi-qkd-sdn-node&revision=2022-01-30",
    "urn:qkdn:yang:qkdn-key-manager?module=qkdn-key-manager&revision=2026-11-27"]
ENDPOINT = AgentEndpoint("n1", "127.0.0.1", 830, "admin", "pw", "a")


def test_auto_is_libssh_when_importable_else_paramiko(monkeypatch):
    monkeypatch.setattr(netconf_libssh, "available", lambda: True)
    assert resolve_transport("auto") is Transport.LIBSSH
    monkeypatch.setattr(netconf_libssh, "available", lambda: False)
    assert resolve_transport(Transport.AUTO) is Transport.PARAMIKO
    assert resolve_transport("libssh") is Transport.LIBSSH   # named: taken as named
    with pytest.raises(ValueError):
        resolve_transport("telnet")


def test_default_config_asks_for_auto():
    assert SouthboundConfig().transport == Transport.AUTO


class _Manager:
    def __init__(self, capabilities: list[str]) -> None:
        self.server_capabilities = capabilities
        self.calls: list[str] = []

    def create_subscription(self) -> None:
        self.calls.append("create-subscription")

    def close_session(self) -> None:
        self.calls.append("close-session")


def _recorders(monkeypatch, capabilities=GOOD_CAPABILITIES):
    used: list[tuple[str, dict]] = []
    manager = _Manager(capabilities)

    def libssh_connect(host, port, username, password, **kwargs):
        used.append(("libssh", {"host": host, "port": port, **kwargs}))
        return manager

    def paramiko_connect(**kwargs):
        used.append(("paramiko", kwargs))
        return manager

    monkeypatch.setattr(netconf_libssh, "connect", libssh_connect)
    import ncclient.manager

    monkeypatch.setattr(ncclient.manager, "connect", paramiko_connect)
    return used, manager


@pytest.mark.parametrize("transport", ["libssh", "paramiko"])
def test_connect_agent_uses_the_transport_asked_for_and_subscribes(monkeypatch, transport):
    used, manager = _recorders(monkeypatch)
    config = SouthboundConfig(transport=transport, connect_timeout_s=3, rpc_timeout_s=4)
    assert connect_agent(ENDPOINT, config) is manager
    ((name, kwargs),) = used
    assert name == transport
    assert kwargs["manager_params"] == {"timeout": 4}
    assert kwargs["timeout"] == 3
    if transport == "paramiko":   # host keys of loopback agents: not verified, as before
        assert kwargs["hostkey_verify"] is False
    assert manager.calls == ["create-subscription"]


def test_an_agent_lacking_a_capability_is_closed_again(monkeypatch):
    _, manager = _recorders(monkeypatch, GOOD_CAPABILITIES[:1])
    with pytest.raises(CapabilityError):
        connect_agent(ENDPOINT, SouthboundConfig(transport="libssh"))
    assert manager.calls == ["close-session"]


def test_transport_setting_argument_then_environment_then_auto(tmp_path):
    env = {"QKDN_SOUTHBOUND_TRANSPORT": "paramiko"}
    assert resolve_settings(tmp_path, environ={}).southbound_transport == "auto"
    assert resolve_settings(tmp_path, environ=env).southbound_transport == "paramiko"
    assert resolve_settings(tmp_path, southbound_transport="libssh",
                            environ=env).southbound_transport == "libssh"
    with pytest.raises(ConfigError, match="unknown south-bound transport 'ssh1'"):
        resolve_settings(tmp_path, environ={"QKDN_SOUTHBOUND_TRANSPORT": "ssh1"})
