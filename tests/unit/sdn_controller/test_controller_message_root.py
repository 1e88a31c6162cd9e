"""The root of a NETCONF message from its first bytes: the same answer as ncclient's."""

import pytest
from lxml import etree
from ncclient.xml_ import parse_root

from sdn_controller.message_root import (
    FIRST_FEED_CHARS,
    install_message_root,
    message_root,
    plain_root,
)

BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"
NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"


def _reply(body: str, declaration: bool = True) -> str:
    head = '<?xml version="1.0" encoding="UTF-8"?>' if declaration else ""
    return (f'{head}<nc:rpc-reply xmlns:nc="{BASE}" xmlns="urn:etsi:qkd:yang:etsi-qkd-node" '
            f'message-id="urn:uuid:8d1c">{body}</nc:rpc-reply>')


MESSAGES = [
    _reply("<nc:ok/>"),
    _reply("<nc:data>" + "<qkd_app><app_id>é-ü</app_id></qkd_app>" * 4000 + "</nc:data>"),
    _reply("<nc:ok/>", declaration=False),
    (f'<notification xmlns="{NOTIF}"><eventTime>2026-11-27T10:00:00Z</eventTime>'
     '<x xmlns="urn:y"/></notification>'),
    # the root's start tag itself longer than the first feed
    f'<rpc-reply xmlns="{BASE}" message-id="1" ' + " ".join(
        f'a{i}="{"v" * 40}"' for i in range(60)) + "><ok/></rpc-reply>",
    # multi-byte characters across the first feed's boundary
    f'<rpc-reply xmlns="{BASE}" message-id="1" note="{"ä" * (FIRST_FEED_CHARS + 3)}"/>',
    # the agent's own envelope (read by the regular expression) and its near relatives
    (f"<?xml version='1.0' encoding='UTF-8'?>\n<rpc-reply xmlns=\"{BASE}\" "
    'message-id="qkdn-17"><ok/></rpc-reply>'),
    f"<rpc-reply message-id='7' xmlns='{BASE}' xmlns:x=\"urn:x\"  ><ok/></rpc-reply>",
    f'  <notification xmlns="{NOTIF}"><eventTime>t</eventTime></notification>',
    # shapes left to lxml: references, white space XML normalises, qualified attributes,
    # no default namespace, an empty one
    f'<rpc-reply xmlns="{BASE}" message-id="a&amp;b&#x41;"><ok/></rpc-reply>',
    f'<rpc-reply xmlns="{BASE}" message-id="a\tb\nc"><ok/></rpc-reply>',
    f'<rpc-reply xmlns="{BASE}" xmlns:y="urn:y" y:tag="1" message-id="2"><ok/></rpc-reply>',
    '<rpc-reply message-id="3"><ok/></rpc-reply>',
    f'<rpc-reply xmlns="" message-id="4" xmlns:nc="{BASE}"/>',
    f'<!-- a comment first --><rpc-reply xmlns="{BASE}" message-id="5"/>',
]


@pytest.mark.parametrize(("raw", "plain"), [
    (f'<rpc-reply xmlns="{BASE}" message-id="qkdn-1"><ok/></rpc-reply>',
     (f"{{{BASE}}}rpc-reply", {"message-id": "qkdn-1"})),
    (f'<rpc-reply xmlns="{BASE}" message-id="a&amp;b"/>', None),
    (f'<nc:rpc-reply xmlns:nc="{BASE}" message-id="1"/>', None),
    ('<rpc-reply message-id="1"/>', None),
    (f'<rpc-reply xmlns="{BASE}" a="1" a="2"/>', None),
    (f'<rpc-reply xmlns="urn:other" xmlns="{BASE}" message-id="1"/>', None),   # declared twice
])
def test_plain_roots_are_read_without_a_parser_and_others_left_to_lxml(raw, plain):
    assert plain_root(raw) == plain


@pytest.mark.parametrize("raw", MESSAGES)
def test_the_same_root_as_ncclient(raw):
    tag, attrib = message_root(raw)
    expected_tag, expected_attrib = parse_root(raw)
    assert tag == expected_tag
    assert dict(attrib) == dict(expected_attrib)


@pytest.mark.parametrize("raw", ["", "garbage", "   ",
                                 f'<rpc-reply xmlns="{BASE}" a="1" a="2"/>'])
def test_malformed_messages_fail_as_in_ncclient(raw):
    with pytest.raises(etree.XMLSyntaxError):
        parse_root(raw)
    with pytest.raises(etree.XMLSyntaxError):
        message_root(raw)


def test_installed_into_ncclient_sessions_idempotently():
    from ncclient.transport import session

    before = session.parse_root
    try:
        install_message_root()
        install_message_root()
        assert session.parse_root is message_root
    finally:
        session.parse_root = before
