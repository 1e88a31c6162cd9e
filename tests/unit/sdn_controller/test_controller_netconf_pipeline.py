"""The pure part of pipelined edit-configs: the <rpc> text, reading replies, PendingEdit."""

import threading

import pytest
from lxml import etree

from sdn_controller.errors import PushError
from sdn_controller.netconf_pipeline import (
    PendingEdit,
    edit_config_rpc,
    next_message_id,
    reply_error,
)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CONFIG = (f'<config xmlns="{NC}"><qkd_node xmlns="urn:etsi:qkd:yang:etsi-qkd-node">'
          '<qkdn_id>n1</qkdn_id></qkd_node></config>')


def _reply(body, message_id="m1"):
    return f'<rpc-reply xmlns="{NC}" message-id="{message_id}">{body}</rpc-reply>'


def test_rpc_wraps_the_config_in_an_edit_config_of_running_with_its_message_id():
    rpc = etree.fromstring(edit_config_rpc('id-"1"', etree.fromstring(CONFIG)))
    assert rpc.tag == f"{{{NC}}}rpc" and rpc.get("message-id") == 'id-"1"'
    (edit,) = rpc
    assert edit.tag == f"{{{NC}}}edit-config"
    assert [e.tag for e in edit.find(f"{{{NC}}}target")] == [f"{{{NC}}}running"]
    config = edit.find(f"{{{NC}}}config")
    assert etree.tostring(config) == etree.tostring(etree.fromstring(CONFIG))


def test_rpc_takes_a_serialised_config_and_a_candidate_target():
    rpc = etree.fromstring(edit_config_rpc("2", CONFIG, target="candidate"))
    assert rpc.find(f".//{{{NC}}}candidate") is not None
    assert rpc.findtext(".//{urn:etsi:qkd:yang:etsi-qkd-node}qkdn_id") == "n1"


def test_rpc_refuses_a_payload_not_rooted_in_config_and_an_unknown_datastore():
    with pytest.raises(ValueError, match="<config>"):
        edit_config_rpc("3", etree.Element(f"{{{NC}}}data"))
    with pytest.raises(ValueError, match="datastore"):
        edit_config_rpc("3", CONFIG, target="everything")


def test_message_ids_are_unique():
    ids = [next_message_id() for _ in range(100)]
    assert len(set(ids)) == 100


def test_ok_reply_is_no_error():
    assert reply_error(_reply("<ok/>")) is None
    assert reply_error(_reply("<ok/>").encode()) is None


def test_rpc_error_reply_gives_its_tag_and_message():
    error = _reply("<rpc-error><error-type>application</error-type>"
                   "<error-tag>data-missing</error-tag><error-severity>error</error-severity>"
                   "<error-message>no such app</error-message></rpc-error>")
    assert reply_error(error) == "data-missing: no such app"
    bare = _reply("<rpc-error><error-tag>operation-failed</error-tag></rpc-error>")
    assert reply_error(bare) == "operation-failed"


@pytest.mark.parametrize("raw, expected", [
    ("<rpc-reply", "malformed rpc-reply"),
    (f'<hello xmlns="{NC}"/>', "not an rpc-reply"),
    (_reply("<data/>"), "rpc-reply without <ok/>"),
])
def test_anything_but_ok_is_an_error(raw, expected):
    assert reply_error(raw).startswith(expected)


def test_pending_edit_waits_for_the_reply_from_another_thread_and_reports_it_once():
    seen = []
    pending = PendingEdit("n1", "m1", lambda seconds, ok: seen.append((seconds >= 0, ok)))
    threading.Timer(0.02, pending.deliver_reply, args=(_reply("<ok/>"),)).start()
    pending.wait(5)
    assert pending.done and seen == [(True, True)]
    pending.wait(5)
    assert seen == [(True, True)]   # observed once


def test_pending_edit_raises_the_agents_error_a_lost_session_and_a_timeout():
    refused = PendingEdit("n1", "m1")
    refused.deliver_reply(_reply("<rpc-error><error-tag>invalid-value</error-tag>"
                                 "<error-message>bad</error-message></rpc-error>"))
    with pytest.raises(PushError, match="invalid-value: bad") as err:
        refused.wait(1)
    assert err.value.node_id == "n1"
    lost = PendingEdit("n2", "m2")
    lost.deliver_error(ConnectionResetError("reset by peer"))
    with pytest.raises(PushError, match="session lost: reset by peer"):
        lost.wait(1)
    seen = []
    silent = PendingEdit("n3", "m3", lambda seconds, ok: seen.append((seconds, ok)),
                         timeout_s=0.01)
    with pytest.raises(PushError, match="no reply to edit-config within 0.01 s"):
        silent.wait()
    assert seen == [(0.01, False)]


@pytest.mark.parametrize("raw, expected", [
    # the agent's own <ok/> reply: read without a parse
    ((f"<?xml version='1.0' encoding='UTF-8'?>\n<rpc-reply xmlns=\"{NC}\" "
     'message-id="qkdn-12"><ok/></rpc-reply>'), None),
    (f"<rpc-reply message-id='1' xmlns='{NC}'>\n  <ok />\n</rpc-reply>\n", None),
    # everything else goes through the parser, with the same verdicts as before
    (f'<rpc-reply xmlns="{NC}" message-id="1" message-id="2"><ok/></rpc-reply>',
     "malformed rpc-reply"),
    (f'<rpc-reply xmlns="{NC}" message-id="1"><ok/></rpc-reply><x/>', "malformed rpc-reply"),
    (f'<rpc-reply xmlns="{NC}" xmlns="{NC}" message-id="1"><ok/></rpc-reply>',
     "malformed rpc-reply"),
    (f'<rpc-reply xmlns="{NC}" message-id="1"/><ok/></rpc-reply>', "malformed rpc-reply"),
    ('<rpc-reply xmlns="urn:other" message-id="1"><ok/></rpc-reply>', "not an rpc-reply"),
    (f'<rpc-reply xmlns="{NC}" xmlns:nc="{NC}" message-id="1"><nc:ok/></rpc-reply>', None),
    ((f'<rpc-reply xmlns="{NC}" message-id="1"><ok/><rpc-error><error-tag>in-use'
     "</error-tag></rpc-error></rpc-reply>"), None),
    ((f'<rpc-reply xmlns="{NC}" message-id="1"><rpc-error><error-tag>in-use</error-tag>'
     "</rpc-error></rpc-reply>"), "in-use"),
])
def test_plain_ok_replies_need_no_parse_and_others_keep_their_verdict(raw, expected):
    got = reply_error(raw)
    assert got == expected if expected is None else got.startswith(expected)
    assert reply_error(raw.encode()) == got          # the parser's verdict on the same bytes
