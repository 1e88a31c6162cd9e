"""NetconfSession without sockets: hello, framing switch, dispatch and rpc-error mapping.

The datastore here is a recorder of the calls the operations make (the real libyang datastore
is exercised by the integration tests); everything else is the production code.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from qkd_agent.capabilities import SchemaModule, server_capabilities
from qkd_agent.framing import ChunkedDecoder, EndOfMessageDecoder, Framing, encode_message
from qkd_agent.operations import ServerState
from qkd_agent.rpc_error import ErrorTag, RpcError
from qkd_agent.session import NetconfSession, SessionState, parse_message
from qkdn.namespaces import BASE_1_0, BASE_1_1, NETCONF_BASE_NS

NC = NETCONF_BASE_NS
Q = f"{{{NC}}}"


class RecordingDatastore:
    """Records what the operations ask of the datastore; optionally fails with an RpcError."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.fail_with: RpcError | None = None

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def get_config(self, filter):
        self.calls.append(("get_config", filter))
        self._maybe_fail()
        return etree.Element(Q + "data")

    def get(self, filter, operational):
        self.calls.append(("get", filter, operational))
        self._maybe_fail()
        return etree.Element(Q + "data")

    def edit_config(self, config, **options):
        self.calls.append(("edit_config", config, options))
        self._maybe_fail()

    def validate(self, config=None):
        self.calls.append(("validate", config))
        self._maybe_fail()

    def running_json(self):
        return {"m:x": {"y": 1}, "m:gone": {}, "unknown-module:z": {}}


class Peer:
    """The client end of one session: collects framed output and decodes it."""

    def __init__(self, server: ServerState, session_id: int = 1, max_size: int = 1 << 20,
                 may_write: bool = True) -> None:
        self.raw = bytearray()
        self.closed = False
        caps = server_capabilities(server.modules)
        self.session = NetconfSession(session_id, "admin", server, caps, self.raw.extend,
                                      self.close, max_size, may_write=may_write)
        self.decoder: EndOfMessageDecoder | ChunkedDecoder = EndOfMessageDecoder()
        self.session.start()
        self.hello = parse_message(self.decoder.feed(bytes(self.raw))[0])
        self.raw.clear()

    def close(self) -> None:
        self.closed = True

    def send_hello(self, caps=(BASE_1_0, BASE_1_1), extra: bytes = b"") -> None:
        body = "".join(f"<capability>{c}</capability>" for c in caps)
        hello = f'<hello xmlns="{NC}"><capabilities>{body}</capabilities></hello>'.encode()
        self.session.data_received(encode_message(hello, Framing.END_OF_MESSAGE) + extra)
        if self.session.framing is Framing.CHUNKED:
            self.decoder = ChunkedDecoder()

    def rpc(self, op: str, message_id: str = "1", raw: bytes | None = None) -> etree._Element:
        data = raw if raw is not None else (
            f'<rpc xmlns="{NC}" message-id="{message_id}">{op}</rpc>'.encode())
        self.session.data_received(encode_message(data, self.session.framing))
        return self.take()

    def take(self) -> etree._Element:
        messages = self.decoder.feed(bytes(self.raw))
        self.raw.clear()
        assert len(messages) == 1, messages
        return etree.fromstring(messages[0])


def error_tag(reply: etree._Element) -> str:
    return reply.findtext(f"{Q}rpc-error/{Q}error-tag")


@pytest.fixture
def server() -> ServerState:
    module = SchemaModule("m", "2024-01-01", "urn:m", "module m { }")
    return ServerState(datastore=RecordingDatastore(), modules=(module,),
                       state_provider=lambda: {"m:x": {"y": 1}})


@pytest.fixture
def peer(server) -> Peer:
    p = Peer(server)
    p.send_hello()
    return p


def test_server_hello_lists_capabilities_and_session_id(server):
    p = Peer(server, session_id=7)
    caps = [c.text for c in p.hello.iter(Q + "capability")]
    assert BASE_1_0 in caps and BASE_1_1 in caps
    assert "urn:m?module=m&revision=2024-01-01" in caps
    assert p.hello.findtext(Q + "session-id") == "7"


def test_chunked_framing_after_base11_hello(peer):
    assert peer.session.framing is Framing.CHUNKED
    reply = peer.rpc("<get/>", message_id="42")
    assert reply.tag == Q + "rpc-reply" and reply.get("message-id") == "42"
    assert reply.find(Q + "data") is not None


def test_base10_only_client_keeps_end_of_message(server):
    p = Peer(server)
    p.send_hello(caps=(BASE_1_0,))
    assert p.session.framing is Framing.END_OF_MESSAGE
    assert p.rpc("<get/>").find(Q + "data") is not None


def test_rpc_in_same_read_as_hello_uses_new_framing(server):
    p = Peer(server)
    rpc = f'<rpc xmlns="{NC}" message-id="5"><get/></rpc>'.encode()
    p.send_hello(extra=encode_message(rpc, Framing.CHUNKED))
    assert p.take().get("message-id") == "5"


def test_reply_keeps_every_rpc_attribute(peer):
    raw = f'<rpc xmlns="{NC}" xmlns:ex="urn:ex" message-id="9" ex:user="bob"><get/></rpc>'.encode()
    reply = peer.rpc("", raw=raw)
    assert reply.get("message-id") == "9" and reply.get("{urn:ex}user") == "bob"


@pytest.mark.parametrize(
    "hello",
    [
        b"<rpc/>",
        f'<hello xmlns="{NC}"><capabilities><capability>urn:x</capability></capabilities></hello>'.encode(),
        f'<hello xmlns="{NC}"><capabilities><capability>{BASE_1_0}</capability></capabilities>'
        f"<session-id>4</session-id></hello>".encode(),
        b"<hello",
    ],
)
def test_bad_hello_closes_session(server, hello):
    p = Peer(server)
    p.session.data_received(encode_message(hello, Framing.END_OF_MESSAGE))
    assert p.closed and p.session.state is SessionState.CLOSED
    assert 1 not in server.sessions


def test_invalid_xml_gets_malformed_message_and_session_lives(peer):
    reply = peer.rpc("", raw=b"<rpc message-id='1'><get></rpc>")
    assert error_tag(reply) == "malformed-message"
    assert reply.get("message-id") is None
    assert peer.rpc("<get/>").find(Q + "data") is not None


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get><filter>&lol3;</filter></get></rpc>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get><filter>&x;</filter></get></rpc>"""
XXE_NET = b"""<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://203.0.113.1/x.dtd">
<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get/></rpc>"""


DEEP = (b'<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1"><get><filter>'
        + b"<a>" * 5000 + b"</a>" * 5000 + b"</filter></get></rpc>")


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE, XXE_NET, DEEP])
def test_dtd_and_entities_are_refused(peer, server, payload):
    reply = peer.rpc("", raw=payload)
    assert error_tag(reply) == "malformed-message"
    assert b"root:" not in etree.tostring(reply)
    assert server.datastore.calls == []


def test_entities_never_resolved_even_if_check_bypassed():
    # the parser itself refuses to expand: a DOCTYPE-free document cannot declare entities,
    # and an undeclared entity reference is a syntax error
    with pytest.raises(RpcError) as err:
        parse_message(b"<a>&undefined;</a>")
    assert err.value.tag is ErrorTag.MALFORMED_MESSAGE


def test_missing_message_id(peer):
    reply = peer.rpc("", raw=f'<rpc xmlns="{NC}"><get/></rpc>'.encode())
    assert error_tag(reply) == "missing-attribute"
    assert reply.findtext(f"{Q}rpc-error/{Q}error-info/{Q}bad-attribute") == "message-id"


def test_unknown_operation(peer):
    reply = peer.rpc('<frobnicate xmlns="urn:x"/>')
    assert error_tag(reply) == "operation-not-supported"
    assert reply.findtext(f"{Q}rpc-error/{Q}error-info/{Q}bad-element") == "frobnicate"


def test_extra_operations_serve_module_rpcs(server):
    """A server may add operations (a YANG module's RPCs) by namespace and name; the base
    operations stay, and an RpcError from an extra operation reaches the client as is."""
    seen = []

    def frobnicate(op, call):
        seen.append((op.findtext("{urn:x}what"), call.session_id))
        if op.findtext("{urn:x}what") == "bad":
            raise RpcError(ErrorTag.INVALID_VALUE, "no such thing", app_tag="unknown-thing")
        out = etree.Element("{urn:x}result")
        out.text = "done"
        return out

    server.extra_operations = {("urn:x", "frobnicate"): frobnicate}
    p = Peer(server, session_id=3)
    p.send_hello()
    reply = p.rpc('<frobnicate xmlns="urn:x"><what>it</what></frobnicate>')
    assert reply.findtext("{urn:x}result") == "done" and seen == [("it", 3)]
    reply = p.rpc('<frobnicate xmlns="urn:x"><what>bad</what></frobnicate>')
    assert error_tag(reply) == "invalid-value"
    assert reply.findtext(f"{Q}rpc-error/{Q}error-app-tag") == "unknown-thing"
    assert p.rpc('<frobnicate xmlns="urn:other"/>').findtext(
        f"{Q}rpc-error/{Q}error-tag") == "operation-not-supported"
    assert p.rpc("<get/>").find(Q + "data") is not None


def test_not_an_rpc(peer):
    assert error_tag(peer.rpc("", raw=b"<foo/>")) == "malformed-message"


def test_get_passes_filter_and_operational_state(peer, server):
    peer.rpc('<get><filter type="subtree"><x xmlns="urn:m"/></filter></get>')
    name, flt, operational = server.datastore.calls[-1]
    assert name == "get" and flt.tag == Q + "filter" and operational == {"m:x": {"y": 1}}


def test_xpath_filter_goes_to_datastore_other_types_refused(peer, server):
    peer.rpc('<get-config><source><running/></source><filter type="xpath" select="/x"/></get-config>')
    assert server.datastore.calls[-1][1].get("select") == "/x"
    reply = peer.rpc('<get-config><source><running/></source><filter type="regex"/></get-config>')
    assert error_tag(reply) == "bad-attribute"


def test_several_errors_are_all_reported(peer, server):
    class Several(RpcError):
        def to_xml_list(self):
            return [RpcError(ErrorTag.INVALID_VALUE, "a").to_xml(),
                    RpcError(ErrorTag.DATA_MISSING, "b").to_xml()]

    server.datastore.fail_with = Several(ErrorTag.INVALID_VALUE, "a")
    reply = peer.rpc("<edit-config><target><running/></target><error-option>continue-on-error"
                     "</error-option><config/></edit-config>")
    assert [e.text for e in reply.iter(Q + "error-tag")] == ["invalid-value", "data-missing"]


def test_edit_config_options_reach_datastore(peer, server):
    reply = peer.rpc(
        "<edit-config><target><running/></target><default-operation>replace</default-operation>"
        "<test-option>test-only</test-option><error-option>rollback-on-error</error-option>"
        '<config><x xmlns="urn:m"/></config></edit-config>'
    )
    assert reply.find(Q + "ok") is not None
    _, config, options = server.datastore.calls[-1]
    assert config.tag == Q + "config"
    assert options == {"default_operation": "replace", "test_option": "test-only",
                       "error_option": "rollback-on-error"}


@pytest.mark.parametrize(
    ("op", "tag"),
    [
        ("<edit-config><target><running/></target></edit-config>", "missing-element"),
        ("<edit-config><config/></edit-config>", "missing-element"),
        ("<edit-config><target><candidate/></target><config/></edit-config>", "operation-not-supported"),
        (("<edit-config><target><running/></target><default-operation>merge-all</default-operation>"
         "<config/></edit-config>"), "invalid-value"),
        ("<edit-config><target><running/></target><bogus/><config/></edit-config>", "unknown-element"),
        ("<edit-config><target><running/></target><url>file:///x</url></edit-config>",
         "operation-not-supported"),
        ("<get-config/>", "missing-element"),
        ("<get-config><source><startup/></source></get-config>", "operation-not-supported"),
        ("<kill-session/>", "missing-element"),
        ("<kill-session><session-id>abc</session-id></kill-session>", "invalid-value"),
        ("<kill-session><session-id>1</session-id></kill-session>", "invalid-value"),
        ("<kill-session><session-id>99</session-id></kill-session>", "invalid-value"),
        ("<unlock><target><running/></target></unlock>", "operation-failed"),
        (('<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">'
         "<identifier>nope</identifier></get-schema>"), "invalid-value"),
        ('<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"/>', "missing-element"),
        (('<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
         "<startTime>2024-01-01T00:00:00Z</startTime></create-subscription>"), "operation-not-supported"),
        (('<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
         "<stream>OTHER</stream></create-subscription>"), "invalid-value"),
        # without :candidate the operation itself is refused, whatever it carries
        ("<commit><bogus>1</bogus></commit>", "operation-not-supported"),
        ("<discard-changes><bogus/></discard-changes>", "operation-not-supported"),
    ],
)
def test_parameter_errors(peer, server, op, tag):
    assert error_tag(peer.rpc(op)) == tag
    assert not [c for c in server.datastore.calls if c[0] == "edit_config"]


def test_datastore_rpc_error_is_returned_as_is(peer, server):
    server.datastore.fail_with = RpcError(ErrorTag.DATA_EXISTS, "already there",
                                          path="/etsi-qkdn:qkd_node")
    reply = peer.rpc("<edit-config><target><running/></target><config/></edit-config>")
    assert error_tag(reply) == "data-exists"
    assert reply.findtext(f"{Q}rpc-error/{Q}error-path") == "/etsi-qkdn:qkd_node"


def test_unexpected_exception_is_operation_failed(peer, server):
    server.datastore.get = lambda *a: 1 / 0
    reply = peer.rpc("<get/>")
    assert error_tag(reply) == "operation-failed"
    assert peer.rpc("<get-config><source><running/></source></get-config>").find(Q + "data") is not None


def test_lock_denied_names_holder_and_edit_is_in_use(server):
    a, b = Peer(server, 1), Peer(server, 2)
    a.send_hello()
    b.send_hello()
    assert a.rpc("<lock><target><running/></target></lock>").find(Q + "ok") is not None
    denied = b.rpc("<lock><target><running/></target></lock>")
    assert error_tag(denied) == "lock-denied"
    assert denied.findtext(f"{Q}rpc-error/{Q}error-info/{Q}session-id") == "1"
    in_use = b.rpc("<edit-config><target><running/></target><config/></edit-config>")
    assert error_tag(in_use) == "in-use"
    assert a.rpc("<edit-config><target><running/></target><config/></edit-config>").find(Q + "ok") is not None
    a.session.connection_lost()  # a lost session releases its lock
    assert b.rpc("<lock><target><running/></target></lock>").find(Q + "ok") is not None


def test_kill_session_ends_other_and_releases_its_lock(server):
    a, b = Peer(server, 1), Peer(server, 2)
    a.send_hello()
    b.send_hello()
    a.rpc("<lock><target><running/></target></lock>")
    assert b.rpc("<kill-session><session-id>1</session-id></kill-session>").find(Q + "ok") is not None
    assert a.closed and 1 not in server.sessions
    assert server.locks.holder("running") is None


def test_close_session_replies_ok_then_closes(peer, server):
    assert peer.rpc("<close-session/>").find(Q + "ok") is not None
    assert peer.closed and peer.session.state is SessionState.CLOSED
    assert not server.sessions


def test_get_schema_returns_module_text(peer):
    reply = peer.rpc('<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">'
                     "<identifier>m</identifier><version>2024-01-01</version><format>yang</format>"
                     "</get-schema>")
    assert reply.findtext("{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}data") == "module m { }"


def test_subscription_receives_notifications_between_replies(peer, server):
    sub = '<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>'
    assert peer.rpc(sub).find(Q + "ok") is not None
    assert error_tag(peer.rpc(sub)) == "in-use"
    body = etree.fromstring(b'<ev xmlns="urn:m"><a>1</a></ev>')
    assert server.hub.publish(body, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == 1
    note = peer.take()
    assert note.findtext("{urn:ietf:params:xml:ns:netconf:notification:1.0}eventTime") == \
        "2024-01-02T03:04:05.000000Z"
    assert note.find("{urn:m}ev/{urn:m}a").text == "1"
    assert peer.rpc("<get/>").find(Q + "data") is not None  # interleave


def test_subscription_filter(peer, server):
    peer.rpc('<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
             '<filter type="subtree"><ev xmlns="urn:m"><a>2</a></ev></filter></create-subscription>')
    t = datetime.now(UTC)
    assert server.hub.publish(etree.fromstring(b'<ev xmlns="urn:m"><a>1</a></ev>'), t) == 0
    assert server.hub.publish(etree.fromstring(b'<other xmlns="urn:m"/>'), t) == 0
    assert server.hub.publish(etree.fromstring(b'<ev xmlns="urn:m"><a>2</a></ev>'), t) == 1


def test_bad_chunk_framing_closes_session(peer):
    peer.session.data_received(b"\n#abc\n")
    assert peer.closed


def test_oversized_message_closes_session(server):
    p = Peer(server, max_size=1000)
    p.send_hello()
    p.session.data_received(b"\n#5000\n" + b"x" * 5000)
    assert p.closed


@pytest.mark.parametrize(
    "op",
    [
        "<edit-config><target><running/></target><config/></edit-config>",
        "<lock><target><running/></target></lock>",
        "<unlock><target><running/></target></unlock>",
        "<kill-session><session-id>1</session-id></kill-session>",
    ],
)
def test_read_only_session_gets_access_denied_for_writes(server, op):
    writer = Peer(server, 1)
    reader = Peer(server, 2, may_write=False)
    writer.send_hello()
    reader.send_hello()
    assert error_tag(reader.rpc(op)) == "access-denied"
    assert not writer.closed and server.datastore.calls == []
    assert reader.rpc("<get/>").find(Q + "data") is not None


def test_copy_config_replaces_whole_running(peer, server):
    reply = peer.rpc('<copy-config><target><running/></target><source><config>'
                     '<x xmlns="urn:m"><y>2</y></x></config></source></copy-config>')
    assert reply.find(Q + "ok") is not None
    _, edit, options = server.datastore.calls[-1]
    assert options["default_operation"] == "replace"
    assert [(etree.QName(c).localname, c.get(Q + "operation")) for c in edit] == [
        ("x", None), ("gone", "remove")]


def test_copy_config_running_to_running_and_delete_config(peer, server):
    reply = peer.rpc("<copy-config><target><running/></target><source><running/></source>"
                     "</copy-config>")
    assert reply.find(Q + "ok") is not None and server.datastore.calls == []
    assert error_tag(peer.rpc("<delete-config><target><running/></target></delete-config>")) \
        == "operation-failed"
    assert error_tag(peer.rpc("<delete-config><target><startup/></target></delete-config>")) \
        == "operation-not-supported"


@pytest.mark.parametrize("rpc_text", [
    f'<rpc xmlns="{NETCONF_BASE_NS}" message-id="7"><commit/></rpc>',
    (f'<nc:rpc xmlns:nc="{NETCONF_BASE_NS}" message-id="x&amp;y" xmlns:ex="urn:example" '
     'ex:user="bob" ex:n="1"><nc:commit/></nc:rpc>'),
    f'<rpc xmlns="{NETCONF_BASE_NS}" xmlns:a="urn:a" message-id="42" a:trace="t"><get/></rpc>',
])
def test_ok_reply_is_spliced_and_equals_the_built_one(rpc_text):
    from qkd_agent.session import build_rpc_reply, ok_element

    rpc = parse_message(rpc_text.encode())
    spliced = build_rpc_reply(rpc, None)
    built = build_rpc_reply(rpc, [ok_element()])
    reply, expected = etree.fromstring(spliced), etree.fromstring(built)
    assert reply.tag == expected.tag == f"{{{NETCONF_BASE_NS}}}rpc-reply"
    assert dict(reply.attrib) == dict(expected.attrib) == dict(rpc.attrib)
    assert reply.nsmap == expected.nsmap
    assert [child.tag for child in reply] == [f"{{{NETCONF_BASE_NS}}}ok"]
    assert etree.tostring(reply, method="c14n") == etree.tostring(expected, method="c14n")


@pytest.mark.parametrize("attributes", [
    'message-id="101"',
    'message-id="a&amp;b &lt;c&gt; &quot;d&quot; \'e\' f&#10;g&#9;h&#13;i é"',
    'message-id="1" user="x" other=""',
])
def test_plain_reply_envelope_is_what_lxml_writes(attributes):
    from qkd_agent.session import _plain_envelope, _reply_element

    rpc = parse_message(f'<rpc xmlns="{NETCONF_BASE_NS}" {attributes}><get/></rpc>'.encode())
    assert _plain_envelope(rpc) == etree.tostring(_reply_element(rpc), xml_declaration=True,
                                                  encoding="UTF-8")


def test_reply_envelope_of_a_prefixed_or_qualified_rpc_is_left_to_lxml():
    from qkd_agent.session import _plain_envelope

    prefixed = parse_message(f'<nc:rpc xmlns:nc="{NETCONF_BASE_NS}" message-id="1">'
                             "<nc:get/></nc:rpc>".encode())
    qualified = parse_message(f'<rpc xmlns="{NETCONF_BASE_NS}" xmlns:x="urn:x" '
                              'message-id="1" x:a="b"><get/></rpc>'.encode())
    assert _plain_envelope(prefixed) is None and _plain_envelope(qualified) is None
    assert _plain_envelope(None) == (f"<?xml version='1.0' encoding='UTF-8'?>\n"
                                     f'<rpc-reply xmlns="{NETCONF_BASE_NS}"/>').encode()
