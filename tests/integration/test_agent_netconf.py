"""The NETCONF agent over real SSH on loopback, driven by ncclient and by a raw asyncssh
client (for malformed input that a well-behaved client library cannot send)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import asyncssh
import ncclient.transport.session as nc_session
import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport.errors import AuthenticationError

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.framing import ChunkedDecoder, EndOfMessageDecoder, Framing, encode_message
from qkd_agent.notifications import InvalidNotification
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS, YANG_DIR

pytestmark = pytest.mark.integration

NODE = "etsi-qkd-sdn-node:qkd_node"
TYPES = "etsi-qkd-node-types"
NODE_ID = "11111111-1111-4111-8111-111111111111"
PEER_ID = "22222222-2222-4222-8222-222222222222"
PHYS_ID = "33333333-3333-4333-8333-333333333333"
APP_ID = "55555555-5555-4555-8555-555555555555"
NEW_APP = "66666666-6666-4666-8666-666666666666"
NEW_LINK = "77777777-7777-4777-8777-777777777777"
PASSWORD = "s3cret-pw"
NC = NETCONF_BASE_NS
NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"

nc_session.TICK = 0.001  # ncclient polls its send queue every TICK s (default 0.1)


def initial_config() -> dict:
    return {NODE: {
        "qkdn_id": NODE_ID,
        "qkd_interfaces": {"qkd_interface": [{"qkdi_id": 1, "qkdi_type": f"{TYPES}:DV-QKD"}]},
        "qkd_links": {"qkd_link": [{
            "qkdl_id": PHYS_ID, "qkdl_enable": True,
            "qkdl_local": {"qkdn_id": NODE_ID, "qkdi_id": 1},
            "qkdl_remote": {"qkdn_id": PEER_ID, "qkdi_id": 1},
            "qkdl_type": f"{TYPES}:PHYS",
        }]},
        "qkd_applications": {"qkd_app": [{
            "app_id": APP_ID, "app_type": f"{TYPES}:CLIENT", "server_app_id": "sae://alice",
            "app_priority": 3, "local_qkdn_id": NODE_ID,
        }]},
    }}


def live_state() -> dict:
    return {NODE: {
        "qkdn_status": f"{TYPES}:OPERATING",
        "qkd_links": {"qkd_link": [{
            "qkdl_id": PHYS_ID,
            "qkdl_performance": {"skr": 12000, "eskr": 11000},
        }]},
    }}


class Running:
    def __init__(self, thread: AgentThread, datastore: Datastore, tmp: Path) -> None:
        self.thread = thread
        self.agent = thread.agent
        self.datastore = datastore
        self.port = thread.port
        self.tmp = tmp
        self.changes: list[tuple[dict, dict]] = []

    def connect(self, **kwargs) -> manager.Manager:
        options = {"host": "127.0.0.1", "port": self.port, "username": "admin", "password": PASSWORD,
                       "hostkey_verify": False, "look_for_keys": False, "allow_agent": False, "timeout": 10}
        options.update(kwargs)
        return manager.connect(**options)


@pytest.fixture
def running(tmp_path: Path):
    ctx = load_context()
    datastore = Datastore(ctx, initial_config())
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(str(tmp_path / "client_key"))
    (tmp_path / "authorized_keys").write_bytes(client_key.export_public_key())
    config = AgentConfig(password=PASSWORD, authorized_keys=tmp_path / "authorized_keys",
                         host_key=tmp_path / "host_key", read_only_users={"monitor": "mon-pw"},
                         candidate=True)
    agent = QkdAgent(config, datastore, live_state, ctx=ctx)
    with AgentThread(agent) as thread:
        run = Running(thread, datastore, tmp_path)
        datastore.add_listener(lambda old, new: run.changes.append((old, new)))
        yield run


def add_app_and_link_xml() -> str:
    return f"""<config xmlns="{NC}"><qkd_node xmlns="{ETSI_NODE_NS}" xmlns:t="{ETSI_TYPES_NS}">
      <qkdn_id>{NODE_ID}</qkdn_id>
      <qkd_applications><qkd_app><app_id>{NEW_APP}</app_id><app_type>t:CLIENT</app_type>
        <app_priority>2</app_priority><backing_qkdl_id>{NEW_LINK}</backing_qkdl_id></qkd_app>
      </qkd_applications>
      <qkd_links><qkd_link><qkdl_id>{NEW_LINK}</qkdl_id><qkdl_type>t:VIRT</qkdl_type>
        <virt_prev_hop>{NODE_ID}</virt_prev_hop><virt_next_hop>{PEER_ID}</virt_next_hop>
        <virt_bandwidth>5000</virt_bandwidth></qkd_link></qkd_links>
    </qkd_node></config>"""


def edit_node_xml(inner: str, *, op: str | None = None) -> str:
    return (f'<config xmlns="{NC}" xmlns:nc="{NC}"><qkd_node xmlns="{ETSI_NODE_NS}" '
            f'xmlns:t="{ETSI_TYPES_NS}"><qkdn_id>{NODE_ID}</qkdn_id>{inner}</qkd_node></config>')


# ----------------------------------------------------------------------------- hello, auth


def test_hello_advertises_modules_with_revision_and_get_schema_returns_files(running):
    with running.connect() as m:
        caps = set(m.server_capabilities)
        assert f"{ETSI_NODE_NS}?module=etsi-qkd-sdn-node&revision=2022-01-30" in caps
        assert f"{ETSI_TYPES_NS}?module=etsi-qkd-node-types&revision=2022-01-30" in caps
        for cap in (":base:1.1", ":notification:1.0", ":interleave:1.0", ":writable-running:1.0",
                    ":rollback-on-error:1.0", ":validate:1.1", ":xpath:1.0"):
            assert any(c.endswith(cap) for c in caps), cap
        assert any("ietf-netconf-monitoring" in c for c in caps)
        text = m.get_schema("etsi-qkd-sdn-node", version="2022-01-30").data
        assert text == (YANG_DIR / "etsi-qkd-sdn-node.yang").read_text()
        assert m.get_schema("ietf-yang-types").data.startswith("module ietf-yang-types")


def test_public_key_authentication(running):
    with running.connect(password=None, key_filename=str(running.tmp / "client_key")) as m:
        assert m.connected


def test_read_only_user_reads_but_may_not_write(running):
    with running.connect(username="monitor", password="mon-pw") as m:
        assert m.get_config("running").data is not None
        err = _rpc_error(lambda: m.edit_config(target="running", config=add_app_and_link_xml()))
        assert err.tag == "access-denied"
        assert _rpc_error(lambda: m.lock("running")).tag == "access-denied"
    assert running.changes == []
    with pytest.raises(AuthenticationError):
        running.connect(username="monitor", password=None,
                        key_filename=str(running.tmp / "client_key"))


def test_wrong_password_is_refused(running):
    with pytest.raises(AuthenticationError):
        running.connect(password="wrong")
    with pytest.raises(AuthenticationError):
        running.connect(username="mallory")


# ----------------------------------------------------------------------------- operations


def test_get_config_and_get_with_live_state(running):
    with running.connect() as m:
        config = m.get_config("running").data
        assert config.findtext(f".//{{{ETSI_NODE_NS}}}qkdn_id") == NODE_ID
        assert config.find(f".//{{{ETSI_NODE_NS}}}qkdn_status") is None
        state = m.get(filter=("subtree", f'<qkd_node xmlns="{ETSI_NODE_NS}"/>')).data
        assert state.findtext(f".//{{{ETSI_NODE_NS}}}qkdn_status").endswith("OPERATING")
        assert state.findtext(f".//{{{ETSI_NODE_NS}}}skr") == "12000"
        only_id = m.get_config("running", filter=(
            "subtree", f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkdn_id/></qkd_node>')).data
        node = only_id.find(f"{{{ETSI_NODE_NS}}}qkd_node")
        assert [etree.QName(c).localname for c in node] == ["qkdn_id"]


def test_edit_config_adds_app_and_virtual_link(running):
    with running.connect() as m:
        m.edit_config(target="running", config=add_app_and_link_xml())
        data = m.get_config("running").data
        assert data.find(f".//{{{ETSI_NODE_NS}}}qkd_app[{{{ETSI_NODE_NS}}}app_id='{NEW_APP}']") is not None
        assert data.findtext(f".//{{{ETSI_NODE_NS}}}virt_bandwidth") == "5000"
    assert running.changes and NEW_APP in str(running.changes[-1][1])


def _rpc_error(call) -> RPCError:
    with pytest.raises(RPCError) as err:
        call()
    return err.value


@pytest.mark.parametrize(
    ("inner", "tag"),
    [
        ("<qkd_applications><qkd_app><app_id>not-a-uuid</app_id></qkd_app></qkd_applications>",
         "invalid-value"),
        ((f"<qkd_applications><qkd_app nc:operation='create'><app_id>{APP_ID}</app_id></qkd_app>"
         "</qkd_applications>"), "data-exists"),
        ((f"<qkd_applications><qkd_app nc:operation='delete'><app_id>{NEW_APP}</app_id></qkd_app>"
         "</qkd_applications>"), "data-missing"),
        ("<no_such_leaf>1</no_such_leaf>", "unknown-element"),
        ("<qkd_applications><qkd_app><app_priority>1</app_priority></qkd_app></qkd_applications>",
         "missing-element"),
        ("<qkdn_version nc:operation='frobnicate'>x</qkdn_version>", "bad-attribute"),
    ],
)
def test_invalid_edit_gets_error_tag_and_leaves_datastore_unchanged(running, inner, tag):
    before = running.datastore.running_json()
    with running.connect() as m:
        err = _rpc_error(lambda: m.edit_config(target="running", config=edit_node_xml(inner)))
        assert err.tag == tag, err.message
        assert m.get_config("running").data is not None
    assert running.datastore.running_json() == before
    assert running.changes == []


def test_rollback_on_error_applies_nothing(running):
    inner = (f"<qkdn_location_id>lab-B</qkdn_location_id><qkd_applications><qkd_app>"
             f"<app_id>{NEW_APP}</app_id><app_priority>-1</app_priority></qkd_app></qkd_applications>")
    before = running.datastore.running_json()
    with running.connect() as m:
        err = _rpc_error(lambda: m.edit_config(target="running", config=edit_node_xml(inner),
                                               error_option="rollback-on-error"))
        assert err.tag == "invalid-value"
    assert running.datastore.running_json() == before


def test_test_only_and_validate_do_not_apply(running):
    before = running.datastore.running_json()
    with running.connect() as m:
        m.edit_config(target="running", config=add_app_and_link_xml(), test_option="test-only")
        m.validate(source="running")
    assert running.datastore.running_json() == before


def test_delete_and_replace(running):
    with running.connect() as m:
        m.edit_config(target="running", config=edit_node_xml(
            f"<qkd_applications><qkd_app nc:operation='delete'><app_id>{APP_ID}</app_id>"
            "</qkd_app></qkd_applications>"))
        assert APP_ID not in str(running.datastore.running_json())
        m.edit_config(target="running", config=edit_node_xml(
            "<qkdn_location_id nc:operation='replace'>lab-C</qkdn_location_id>"))
        m.edit_config(target="running", config=edit_node_xml(
            "<qkdn_version nc:operation='remove'/>"))
    assert running.datastore.running_json()[NODE]["qkdn_location_id"] == "lab-C"


def test_copy_config_replaces_the_running_config(running):
    new_config = (f'<source xmlns="{NC}"><config><qkd_node xmlns="{ETSI_NODE_NS}">'
                  f"<qkdn_id>{NODE_ID}</qkdn_id><qkdn_location_id>lab-copy</qkdn_location_id>"
                  "</qkd_node></config></source>")
    with running.connect() as m:
        m.copy_config(source=new_config, target="running")
        node = running.datastore.running_json()[NODE]
        assert node == {"qkdn_id": NODE_ID, "qkdn_location_id": "lab-copy"}
        bad = new_config.replace(NODE_ID, "bad-id")
        assert _rpc_error(lambda: m.copy_config(source=bad, target="running")).tag == \
            "invalid-value"
    assert running.datastore.running_json()[NODE]["qkdn_location_id"] == "lab-copy"


def _location_xml(value: str) -> str:
    return edit_node_xml(f"<qkdn_location_id>{value}</qkdn_location_id>")


def test_candidate_commit_and_discard(running):
    with running.connect() as m:
        assert ":candidate" in " ".join(m.server_capabilities)
        m.edit_config(target="candidate", config=_location_xml("lab-cand"))
        assert "lab-cand" in m.get_config("candidate").data_xml
        assert "lab-cand" not in m.get_config("running").data_xml
        assert running.changes == []
        m.commit()
        assert running.datastore.running_json()[NODE]["qkdn_location_id"] == "lab-cand"
        assert len(running.changes) == 1
        assert APP_ID in str(running.datastore.running_json())  # the rest is kept
        m.edit_config(target="candidate", config=_location_xml("lab-tmp"))
        m.discard_changes()
        assert "lab-cand" in m.get_config("candidate").data_xml
        m.edit_config(target="running", config=_location_xml("lab-direct"))
        assert "lab-direct" in m.get_config("candidate").data_xml  # unmodified: mirrors
        m.validate(source="candidate")


def test_candidate_invalid_edit_and_locks(running):
    a = running.connect()
    with running.connect() as b:
        err = _rpc_error(lambda: b.edit_config(target="candidate",
                                               config=_location_xml("x").replace(NODE_ID, "bad")))
        assert err.tag == "invalid-value"
        a.lock("candidate")  # the failed edit left the candidate unmodified
        assert _rpc_error(lambda: b.edit_config(target="candidate",
                                                config=_location_xml("b"))).tag == "in-use"
        assert _rpc_error(lambda: b.commit()).tag == "in-use"
        a.edit_config(target="candidate", config=_location_xml("by-a"))
        a.close_session()  # the lock holder leaves: its uncommitted changes are discarded
        deadline = time.time() + 5
        while running.agent.session_count > 1 and time.time() < deadline:
            time.sleep(0.02)
        assert "by-a" not in b.get_config("candidate").data_xml
        b.edit_config(target="candidate", config=_location_xml("by-b"))
        with running.connect() as c:
            err = _rpc_error(lambda: c.lock("candidate"))  # modified, uncommitted
            assert err.tag == "lock-denied"
        b.commit()
    assert running.datastore.running_json()[NODE]["qkdn_location_id"] == "by-b"


def test_lock_denied_names_holder_and_is_released_on_close(running):
    a = running.connect()
    with running.connect() as b:
        a.lock("running")
        err = _rpc_error(lambda: b.lock("running"))
        assert err.tag == "lock-denied"
        assert err.info is not None and a.session_id in err.info
        err = _rpc_error(lambda: b.edit_config(target="running", config=add_app_and_link_xml()))
        assert err.tag == "in-use"
        a.close_session()
        time.sleep(0.1)
        b.lock("running")
        b.unlock("running")


def test_kill_session(running):
    a = running.connect()
    with running.connect() as b:
        a.lock("running")
        b.kill_session(a.session_id)
        deadline = time.time() + 5
        while a.connected and time.time() < deadline:
            time.sleep(0.02)
        assert not a.connected
        b.lock("running")


# ----------------------------------------------------------------------------- notifications


def link_down(reason: str) -> dict:
    return {"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {"qkdl_id": PHYS_ID,
                                                                "reason": reason}}}


def test_notification_after_a_change(running):
    def on_change(old: dict, new: dict) -> None:  # what a node runtime does on a change
        if NEW_APP in str(new) and NEW_APP not in str(old):
            running.agent.notify({"etsi-qkd-sdn-node:sdqkdn_application_qos_update": {
                "qkd_application": {"app_id": NEW_APP, "app_priority": 2}}})

    running.datastore.add_listener(on_change)
    with running.connect() as listener, running.connect() as editor:
        listener.create_subscription()
        editor.edit_config(target="running", config=add_app_and_link_xml())
        note = listener.take_notification(timeout=5)
        assert note is not None
        root = etree.fromstring(note.notification_xml.encode())
        assert root.findtext(f"{{{NOTIF_NS}}}eventTime")
        assert root.findtext(f".//{{{ETSI_NODE_NS}}}app_id") == NEW_APP
        # interleave: the subscribed session still answers RPCs
        assert listener.get_config("running").data is not None


def test_qkdn_extension_notification_and_module_capability(running):
    with running.connect() as m:
        assert any("module=qkdn-key-manager&revision=" in c for c in m.server_capabilities)
        m.create_subscription()
        sent = running.agent.notify({"qkdn-key-manager:km_session_state_change": {
            "app_id": APP_ID, "state": "operative", "reason": "configured by controller"}})
        assert sent == 1
        note = etree.fromstring(m.take_notification(timeout=5).notification_xml.encode())
        assert note.findtext(".//{urn:qkdn:yang:qkdn-key-manager}state") == "operative"


def test_invalid_notification_is_refused_and_never_sent(running):
    with running.connect() as m:
        m.create_subscription()
        with pytest.raises(InvalidNotification):
            running.agent.notify({"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {"qkdl_id": "x"}}})
        with pytest.raises(InvalidNotification):
            running.agent.notify({"etsi-qkd-sdn-node:no_such_event": {}})
        assert m.take_notification(timeout=0.3) is None


def test_eight_sessions_with_notifications_flowing(running):
    sessions = [running.connect() for _ in range(8)]
    try:
        for s in sessions:
            s.create_subscription()
        failures: list[str] = []

        def worker(m: manager.Manager, n: int) -> None:
            try:
                for i in range(15):
                    data = m.get(filter=("subtree", f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkdn_id/></qkd_node>')).data
                    if data.findtext(f".//{{{ETSI_NODE_NS}}}qkdn_id") != NODE_ID:
                        failures.append(f"session {n} reply {i} wrong")
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(f"session {n}: {exc!r}")

        threads = [threading.Thread(target=worker, args=(s, n)) for n, s in enumerate(sessions)]
        for t in threads:
            t.start()
        sent = [running.agent.notify(link_down(f"cut-{i}")) for i in range(20)]
        for t in threads:
            t.join(timeout=60)
        assert not failures
        assert sent == [8] * 20
        for s in sessions:
            reasons = []
            for _ in range(20):
                note = s.take_notification(timeout=5)
                assert note is not None
                reasons.append(etree.fromstring(note.notification_xml.encode())
                               .findtext(f".//{{{ETSI_NODE_NS}}}reason"))
            assert reasons == [f"cut-{i}" for i in range(20)]  # none lost, in order
    finally:
        for s in sessions:
            s.close_session()


# ----------------------------------------------------------------------------- raw transport

HELLO_11 = (f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.1'
            "</capability></capabilities></hello>").encode()


class RawClient:
    """A NETCONF channel driven byte by byte (asyncssh client on its own loop)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.loop = asyncio.new_event_loop()

    def run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, 10))

    async def open(self) -> None:
        self.conn = await asyncssh.connect("127.0.0.1", self.port, username="admin",
                                           password=PASSWORD, known_hosts=None)
        self.writer, self.reader, _ = await self.conn.open_session(subsystem="netconf",
                                                                   encoding=None)
        self.decoder: EndOfMessageDecoder | ChunkedDecoder = EndOfMessageDecoder()
        self.hello = await self.next_message()

    async def next_message(self) -> bytes | None:
        """The next message, or None when the server closed the channel."""
        pending = getattr(self, "_pending", [])
        while not pending:
            data = await self.reader.read(65536)
            if not data:
                return None
            pending = self.decoder.feed(data)
        self._pending = pending[1:]
        return pending[0]

    async def hello_11(self) -> None:
        self.writer.write(encode_message(HELLO_11, Framing.END_OF_MESSAGE))
        self.decoder = ChunkedDecoder()

    def close(self) -> None:
        if hasattr(self, "conn"):
            self.conn.close()
        self.loop.close()


@pytest.fixture
def raw(running):
    client = RawClient(running.port)
    client.run(client.open())
    yield client
    client.close()


def _tag(message: bytes) -> str | None:
    return etree.fromstring(message).findtext(f"{{{NC}}}rpc-error/{{{NC}}}error-tag")


def test_malformed_xml_and_bombs_get_rpc_errors_session_survives(raw, running):
    raw.run(raw.hello_11())
    payloads = [
        b"<rpc message-id='1' xmlns='urn:ietf:params:xml:ns:netconf:base:1.0'><get></rpc>",
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;'
        b'&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><rpc message-id="2" '
        b'xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get><filter>&c;</filter></get></rpc>'),
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rpc '
        b'message-id="3" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>&x;</get></rpc>'),
        b'<rpc message-id="4" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><reboot-node/></rpc>',
    ]
    tags = []
    for payload in payloads:
        raw.writer.write(encode_message(payload, Framing.CHUNKED))
        message = raw.run(raw.next_message())
        assert b"root:" not in message
        tags.append(_tag(message))
    assert tags == ["malformed-message", "malformed-message", "malformed-message",
                    "operation-not-supported"]
    raw.writer.write(encode_message(
        f'<rpc message-id="5" xmlns="{NC}"><get-config><source><running/></source>'
        f'<filter type="xpath" xmlns:n="{ETSI_NODE_NS}" select="/n:qkd_node/n:qkdn_id"/>'
        "</get-config></rpc>".encode(), Framing.CHUNKED))
    reply = etree.fromstring(raw.run(raw.next_message()))
    assert reply.findtext(f".//{{{ETSI_NODE_NS}}}qkdn_id") == NODE_ID
    assert running.agent.session_count == 1


def test_pipelined_requests_are_answered_in_order(raw, running):
    raw.run(raw.hello_11())
    burst = b"".join(encode_message(
        f'<rpc message-id="m{i}" xmlns="{NC}"><get-config><source><running/></source>'
        "</get-config></rpc>".encode(), Framing.CHUNKED) for i in range(60))
    raw.writer.write(burst + encode_message(
        f'<rpc message-id="last" xmlns="{NC}"><close-session/></rpc>'.encode(), Framing.CHUNKED))
    ids = []
    while (message := raw.run(raw.next_message())) is not None:
        ids.append(etree.fromstring(message).get("message-id"))
    assert ids == [f"m{i}" for i in range(60)] + ["last"]


def test_bad_chunk_framing_closes_only_that_session(raw, running):
    raw.run(raw.hello_11())
    with running.connect() as other:
        raw.writer.write(b"\n#zz\n<rpc/>")
        assert raw.run(raw.next_message()) is None
        assert other.get_config("running").data is not None


def test_oversized_message_closes_session(running, tmp_path):
    config = AgentConfig(password=PASSWORD, max_message_size=4096)
    small = QkdAgent(config, running.datastore)  # the interface's signature: no ctx given
    with AgentThread(small) as thread:
        client = RawClient(thread.port)
        try:
            client.run(client.open())
            client.run(client.hello_11())
            client.writer.write(b"\n#100000\n" + b"x" * 100000)
            assert client.run(client.next_message()) is None
        finally:
            client.close()


def test_client_that_never_says_hello_is_dropped(running):
    config = AgentConfig(password=PASSWORD, hello_timeout=0.3)
    slow = QkdAgent(config, running.datastore, ctx=running.agent.ctx)
    with AgentThread(slow) as thread:
        client = RawClient(thread.port)
        try:
            client.run(client.open())
            assert client.run(client.next_message()) is None
        finally:
            client.close()


def test_session_limit(running):
    config = AgentConfig(password=PASSWORD, max_sessions=2)
    small = QkdAgent(config, running.datastore, ctx=running.agent.ctx)
    with AgentThread(small) as thread:
        first, second = (manager.connect(host="127.0.0.1", port=thread.port, username="admin",
                                         password=PASSWORD, hostkey_verify=False,
                                         look_for_keys=False, allow_agent=False, timeout=5)
                         for _ in range(2))
        client = RawClient(thread.port)
        try:
            client.run(client.open())
            assert client.hello is None  # closed without a hello
        finally:
            client.close()
        first.close_session()
        deadline = time.time() + 5
        while small.session_count >= 2 and time.time() < deadline:
            time.sleep(0.02)
        third = manager.connect(host="127.0.0.1", port=thread.port, username="admin",
                                password=PASSWORD, hostkey_verify=False, look_for_keys=False,
                                allow_agent=False, timeout=5)
        assert third.connected
        third.close_session()
        second.close_session()


def test_client_that_stops_reading_is_disconnected(running):
    config = AgentConfig(password=PASSWORD, max_output_backlog=32 * 1024)
    agent = QkdAgent(config, running.datastore, ctx=running.agent.ctx)
    sub = (f'<rpc message-id="1" xmlns="{NC}"><create-subscription '
           f'xmlns="{NOTIF_NS}"/></rpc>').encode()

    async def scenario(port: int) -> None:
        async with asyncssh.connect("127.0.0.1", port, username="admin", password=PASSWORD,
                                    known_hosts=None, window=16 * 1024) as conn:
            writer, _reader, _ = await conn.open_session(subsystem="netconf", encoding=None,
                                                         window=16 * 1024)
            writer.write(encode_message(HELLO_11, Framing.END_OF_MESSAGE))
            writer.write(encode_message(sub, Framing.CHUNKED))
            await asyncio.sleep(0.3)  # subscribed; from now on never read
            for i in range(2000):
                await asyncio.to_thread(agent.notify, link_down(f"flood-{i}"))
                if agent.session_count == 0:
                    return
            raise AssertionError("the agent kept a session that reads nothing")

    with AgentThread(agent) as thread:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(asyncio.wait_for(scenario(thread.port), 60))
        finally:
            loop.close()


def test_shell_and_other_subsystems_are_refused(running):
    async def attempt() -> None:
        async with asyncssh.connect("127.0.0.1", running.port, username="admin",
                                    password=PASSWORD, known_hosts=None) as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_session(subsystem="sftp")
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_session(command="id")

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(attempt(), 10))
    finally:
        loop.close()
