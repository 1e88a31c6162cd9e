"""NETCONF over SSH authentication of a real agent: only the configured user, with the right
password or a public key listed in its authorized_keys file, gets a session."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import asyncssh
import pytest

from . import netconf_fuzz as fuzz

pytestmark = pytest.mark.integration


def _key_files(directory, name):
    """A fresh Ed25519 key: (key, private key path in OpenSSH format, mode 0600)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = directory / name
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    return key, path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("auth-keys")
    good, good_path = _key_files(directory, "authorized")
    stranger, stranger_path = _key_files(directory, "stranger")
    authorized_keys = directory / "authorized_keys"
    authorized_keys.write_bytes(good.export_public_key())
    return {"good": good, "good_path": good_path, "stranger": stranger,
            "stranger_path": stranger_path, "authorized_keys": authorized_keys}


@pytest.fixture(scope="module")
def agent(tmp_path_factory, keys):
    """An agent accepting its user by password or by an authorized key."""
    process = fuzz.AgentProcess(tmp_path_factory.mktemp("auth-agent"),
                                authorized_keys=keys["authorized_keys"])
    yield process
    process.stop()


def _attempt(port, username, *, password=None, client_keys=None, kbdint=False):
    """Connect, open the netconf subsystem, exchange hellos and a <get>; the reply."""

    async def attempt():
        async with asyncssh.connect(
            "127.0.0.1", port, username=username, password=password,
            client_keys=client_keys, known_hosts=None, agent_path=None,
            kbdint_auth=kbdint, gss_auth=False, host_based_auth=False,
            login_timeout=10,
        ) as conn:
            session = await fuzz.RawSession.open(conn, fuzz.Channel.CHUNKED)
            await session.send_message(fuzz.PROBE_GET)
            return await session.read_message()

    return asyncio.run(attempt())


def test_right_password_is_accepted(agent):
    assert fuzz.QKDN_ID.encode() in _attempt(agent.port, fuzz.USERNAME, password=fuzz.PASSWORD)


def test_authorized_public_key_is_accepted(agent, keys):
    reply = _attempt(agent.port, fuzz.USERNAME, client_keys=[keys["good"]])
    assert fuzz.QKDN_ID.encode() in reply


def test_wrong_password_is_refused(agent):
    with pytest.raises(asyncssh.PermissionDenied):
        _attempt(agent.port, fuzz.USERNAME, password=fuzz.PASSWORD + "x")


@pytest.mark.parametrize("password", ["", "FUZZ-PASSWORD", fuzz.PASSWORD[:-1],
                                      fuzz.PASSWORD + " ", "fuzz-passwörd"])
def test_near_miss_passwords_are_refused(agent, password):
    with pytest.raises(asyncssh.PermissionDenied):
        _attempt(agent.port, fuzz.USERNAME, password=password)


def test_password_with_a_control_character_ends_the_connection(agent):
    """SASLprep (RFC 4013, asked for by RFC 4252 §8) prohibits control characters: the
    server drops the connection."""
    with pytest.raises((asyncssh.ProtocolError, asyncssh.PermissionDenied)):
        _attempt(agent.port, fuzz.USERNAME, password=fuzz.PASSWORD + "\x00")


def test_unknown_user_is_refused_with_the_right_password(agent):
    with pytest.raises(asyncssh.PermissionDenied):
        _attempt(agent.port, "root", password=fuzz.PASSWORD)


def test_unknown_user_is_refused_with_an_authorized_key(agent, keys):
    with pytest.raises(asyncssh.PermissionDenied):
        _attempt(agent.port, "mallory", client_keys=[keys["good"]])


def test_no_credentials_are_refused(agent):
    with pytest.raises(asyncssh.PermissionDenied):
        _attempt(agent.port, fuzz.USERNAME, kbdint=True)


def test_key_not_in_authorized_keys_is_refused(agent, keys):
    with pytest.raises(asyncssh.PermissionDenied):
        _attempt(agent.port, fuzz.USERNAME, client_keys=[keys["stranger"]])


def test_shell_exec_and_other_subsystems_are_refused(agent):
    async def attempt():
        async with asyncssh.connect("127.0.0.1", agent.port, username=fuzz.USERNAME,
                                    password=fuzz.PASSWORD, known_hosts=None,
                                    client_keys=None, agent_path=None) as conn:
            for kwargs in ({"subsystem": "sftp"}, {"command": "id"}, {}):
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.open_session(**kwargs)

    asyncio.run(attempt())


def test_key_only_agent_refuses_passwords(tmp_path, keys):
    process = fuzz.AgentProcess(tmp_path, password=None, authorized_keys=keys["authorized_keys"])
    try:
        with pytest.raises(asyncssh.PermissionDenied):
            _attempt(process.port, fuzz.USERNAME, password=fuzz.PASSWORD)
        assert fuzz.QKDN_ID.encode() in _attempt(process.port, fuzz.USERNAME,
                                                 client_keys=[keys["good"]])
    finally:
        process.stop()


def _openssh(port, key_path):
    hello = fuzz.eom(fuzz.hello(fuzz.BASE_1_0))
    close = fuzz.eom(fuzz.rpc("<close-session/>", message_id="bye"))
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-p", str(port), "-i", str(key_path),
         "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "PreferredAuthentications=publickey", "-o", "ConnectTimeout=10",
         "-s", f"{fuzz.USERNAME}@127.0.0.1", "netconf"],
        check=False, input=hello + close, capture_output=True, timeout=30,
        env=dict(os.environ, HOME=str(key_path.parent)),
    )


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client not installed")
def test_openssh_client_with_authorized_key(agent, keys):
    """The stock OpenSSH client gets the hello and the <ok/> of close-session (its exit code
    is 255 because the agent closes the channel without an exit-status, which RFC 6242 does
    not ask for)."""
    done = _openssh(agent.port, keys["good_path"])
    assert b"Permission denied" not in done.stderr
    assert b"<hello" in done.stdout and b'message-id="bye"' in done.stdout, done.stderr
    assert b"<ok/>" in done.stdout


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client not installed")
def test_openssh_client_with_unknown_key_is_refused(agent, keys):
    done = _openssh(agent.port, keys["stranger_path"])
    assert done.returncode == 255
    assert b"Permission denied" in done.stderr
    assert b"<hello" not in done.stdout
