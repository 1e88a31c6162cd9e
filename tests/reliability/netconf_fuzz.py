"""NETCONF fuzzing of a real agent over SSH: case generator, oracle and runner (a library).

The agent is a real ``qkdn agent`` subprocess on 127.0.0.1 (ephemeral port). The runner talks
to it through a raw asyncssh channel on the ``netconf`` subsystem, so it can send any bytes:
broken RFC 6242 framing (both base:1.0 ``]]>]]>`` and base:1.1 chunks), invalid XML, wrong
namespaces, unknown operations, invalid ``<edit-config>`` content, entity-expansion bombs,
external entities and oversized messages.

Every case carries its own expectation, derived from RFC 6241/6242 and the YANG model, not
from the agent's code: either one ``<rpc-reply>`` holding an ``<rpc-error>`` whose
``error-tag`` is in a given set, or the session closed by the agent (a framing violation
leaves the peers without a common idea of where a message starts, RFC 6242 §4.2).

Invariants checked while the cases run:

* the agent process stays alive; a well-formed ``<get>`` is answered after every batch, on a
  session that never saw a malformed byte and on the fuzzed sessions still open;
* no entity is ever resolved: no reply contains the canary file's secret token, and a local
  listening socket named by ``http://`` external entities sees no connection;
* the agent's resident set size (``/proc/<pid>/status`` VmRSS) grows by less than a bound;
* no invalid ``<edit-config>`` changes the datastore (``<get-config>`` identical at the end).

>>> # result = run_fuzz(cases=1000, seed=1)   # -> dict, see FuzzResult.as_dict()
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import asyncssh
from lxml import etree

REPO = Path(__file__).resolve().parents[2]
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NODE_NS = "urn:etsi:qkd:yang:etsi-qkd-node"
TYPES_NS = "urn:etsi:qkd:yang:etsi-qkd-node-types"
NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
MON_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"
#: The agent's default maximum message size (qkd_agent.framing.DEFAULT_MAX_MESSAGE_SIZE).
AGENT_MAX_MESSAGE = 16 * 1024 * 1024
USERNAME = "fuzz"
PASSWORD = "fuzz-password"
REPLY_TIMEOUT = 10.0

QKDN_ID = "10000000-0000-4000-8000-000000000001"
PEER_ID = "20000000-0000-4000-8000-000000000002"
LINK_ID = "30000000-0000-4000-8000-000000000003"
APP_ID = "40000000-0000-4000-8000-000000000004"
MISSING_ID = "50000000-0000-4000-8000-000000000005"


class Channel(StrEnum):
    """Where a case is sent: a session in either framing, or a fresh channel as its hello."""

    EOM = "base:1.0"
    CHUNKED = "base:1.1"
    HELLO = "hello"


class Outcome(StrEnum):
    REPLY = "rpc-error"  # one rpc-reply with an rpc-error whose tag is expected
    CLOSE = "closed"  # the agent closes the session without replying
    ANY_REPLY = "any-reply"  # one rpc-reply (data, ok or rpc-error), never an internal error


@dataclass(frozen=True)
class Case:
    """One fuzz case: the raw bytes to send and what RFC 6241/6242 demand in return."""

    kind: str  # the case class, e.g. "framing-chunked"
    channel: Channel
    data: bytes
    outcome: Outcome
    tags: frozenset[str] = frozenset()
    note: str = ""
    framed: bool = False  # data is already on-the-wire bytes (else framed for the channel)


# --------------------------------------------------------------------------- framing helpers


def eom(message: bytes) -> bytes:
    return message + EOM


def chunked(message: bytes, sizes: list[int] | None = None) -> bytes:
    """``message`` in base:1.1 chunks of the given sizes (one chunk if None)."""
    out, pos = bytearray(), 0
    for size in sizes or [len(message)]:
        part = message[pos:pos + size]
        if not part:
            break
        out += b"\n#%d\n" % len(part) + part
        pos += len(part)
    if pos < len(message):
        out += b"\n#%d\n" % (len(message) - pos) + message[pos:]
    return bytes(out + b"\n##\n")


def hello(*caps: str) -> bytes:
    body = "".join(f"<capability>{c}</capability>" for c in caps)
    return f'<hello xmlns="{NC}"><capabilities>{body}</capabilities></hello>'.encode()


def rpc(body: str, message_id: str = "1", extra_ns: str = "") -> bytes:
    return f'<rpc xmlns="{NC}"{extra_ns} message-id="{message_id}">{body}</rpc>'.encode()


def edit(config_body: str, options: str = "", target: str = "<running/>") -> bytes:
    return rpc(f"<edit-config><target>{target}</target>{options}"
               f"<config>{config_body}</config></edit-config>")


def node(inner: str, extra_ns: str = "") -> str:
    return (f'<qkd_node xmlns="{NODE_NS}" xmlns:t="{TYPES_NS}" xmlns:nc="{NC}"{extra_ns}>'
            f"<qkdn_id>{QKDN_ID}</qkdn_id>{inner}</qkd_node>")


def in_link(inner: str, attrs: str = "") -> str:
    return node(f"<qkd_links><qkd_link{attrs}><qkdl_id>{LINK_ID}</qkdl_id>{inner}"
                "</qkd_link></qkd_links>")


def in_app(inner: str) -> str:
    return node(f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>{inner}"
                "</qkd_app></qkd_applications>")


def in_interface(inner: str) -> str:
    return node(f"<qkd_interfaces><qkd_interface><qkdi_id>1</qkdi_id>{inner}"
                "</qkd_interface></qkd_interfaces>")


PROBE_GET = rpc(f'<get><filter type="subtree"><qkd_node xmlns="{NODE_NS}"><qkdn_id/>'
                "</qkd_node></filter></get>", message_id="probe")
GET_CONFIG = rpc("<get-config><source><running/></source></get-config>", message_id="cfg")


def initial_config() -> dict:
    """RFC 7951 JSON of the fuzzed node: one interface, one physical link, one application."""
    types = "etsi-qkd-node-types"
    return {"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": QKDN_ID,
        "qkd_interfaces": {"qkd_interface": [{
            "qkdi_id": 1, "qkdi_model": "twin", "qkdi_type": f"{types}:DV-QKD",
            "qkdi_att_point": {"device": "twin", "port": 1}}]},
        "qkd_links": {"qkd_link": [{
            "qkdl_id": LINK_ID, "qkdl_enable": True,
            "qkdl_local": {"qkdn_id": QKDN_ID, "qkdi_id": 1},
            "qkdl_remote": {"qkdn_id": PEER_ID, "qkdi_id": 1},
            "qkdl_type": f"{types}:PHYS", "phys_channel_att": "4.5",
            "phys_qkd_role": f"{types}:TRANSMITTER"}]},
        "qkd_applications": {"qkd_app": [{
            "app_id": APP_ID, "app_type": f"{types}:CLIENT",
            "server_app_id": "sae://node/app", "client_app_id": ["sae://peer/app"],
            "app_priority": 1, "app_qos": {"max_bandwidth": 1000},
            "backing_qkdl_id": [LINK_ID], "local_qkdn_id": QKDN_ID,
            "remote_qkdn_id": PEER_ID}]},
    }}


# --------------------------------------------------------------------------- case generators

MALFORMED = frozenset({"malformed-message"})


@dataclass(frozen=True)
class Traps:
    """What external entities point at: a canary file and a listening socket."""

    canary_path: Path
    canary_token: str
    http_port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/qkdn-fuzz.dtd"

    @property
    def file_url(self) -> str:
        return self.canary_path.as_uri()


def _valid_rpcs() -> list[bytes]:
    return [
        rpc("<get/>"),
        PROBE_GET,
        GET_CONFIG,
        rpc(f"<get-schema xmlns='{MON_NS}'><identifier>etsi-qkd-sdn-node</identifier></get-schema>"),
        rpc("<lock><target><running/></target></lock>"),
    ]


def _random_name(rng: random.Random, length: int | None = None) -> str:
    n = length or rng.randint(1, 24)
    first = rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
    rest = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_.") for _ in range(n - 1))
    return first + rest


def _random_bytes(rng: random.Random, n: int, exclude: bytes = b"") -> bytes:
    return bytes(b for b in (rng.randrange(256) for _ in range(n)) if b not in exclude) or b"x"


def _framed(kind: str, channel: Channel, data: bytes, outcome: Outcome,
            tags: frozenset[str] = frozenset(), note: str = "") -> Case:
    return Case(kind, channel, data, outcome, tags, note, framed=True)


def gen_framing_eom(rng: random.Random, traps: Traps) -> Case:
    """base:1.0 violations: every one is a message that is not an <rpc> document."""
    valid = rng.choice(_valid_rpcs())
    variant = rng.randrange(7)
    if variant == 0:  # garbage then the delimiter
        data = eom(_random_bytes(rng, rng.randint(1, 200), exclude=b"]<"))
        return _framed("framing-eom", Channel.EOM, data, Outcome.REPLY, MALFORMED, "garbage")
    if variant == 1:  # a broken delimiter: the next message is glued onto this one
        broken = rng.choice([b"]]>]]", b"]]>]", b"]]>", b"]] >]]>"[:5], b"]>]]>"])
        data = valid + broken + eom(valid)
        return _framed("framing-eom", Channel.EOM, data, Outcome.REPLY, MALFORMED, "broken delimiter")
    if variant == 2:  # an empty message
        return _framed("framing-eom", Channel.EOM, EOM, Outcome.REPLY, MALFORMED, "empty")
    if variant == 3:  # chunked framing on a base:1.0 session
        return _framed("framing-eom", Channel.EOM, eom(chunked(valid)), Outcome.REPLY, MALFORMED,
                    "chunks in base:1.0")
    if variant == 4:  # the message cut short before the delimiter
        cut = rng.randint(1, len(valid) - 2)
        return _framed("framing-eom", Channel.EOM, eom(valid[:cut]), Outcome.REPLY, MALFORMED,
                    "truncated")
    if variant == 5:  # two documents in one message
        return _framed("framing-eom", Channel.EOM, eom(valid + valid), Outcome.REPLY, MALFORMED,
                    "two documents")
    # garbage interleaved inside the XML: bytes that are not XML anywhere (not "]]>", which
    # an attribute value may hold)
    pos = rng.randint(1, len(valid) - 1)
    junk = rng.choice([b"\x00", b"\x01\x02", b"\xff\xfe", b"<<", b"\x1b[0m", b"\x7f\x80"])
    return _framed("framing-eom", Channel.EOM, eom(valid[:pos] + junk + valid[pos:]),
                Outcome.REPLY, MALFORMED, "interleaved garbage")


def gen_framing_chunked(rng: random.Random, traps: Traps) -> Case:
    """base:1.1 violations (RFC 6242 §4.2)."""
    valid = rng.choice(_valid_rpcs())
    variant = rng.randrange(11)
    close = Outcome.CLOSE
    if variant == 0:  # declared size smaller than the chunk: the rest is read as a header
        cut = rng.randint(1, len(valid) - 1)
        while valid[cut:cut + 1] == b"\n":
            cut -= 1
        data = b"\n#%d\n" % cut + valid + b"\n##\n"
        return _framed("framing-chunked", Channel.CHUNKED, data, close, note="size too small")
    if variant == 1:  # declared size larger: the chunk swallows trailing garbage
        extra = rng.randint(1, 64)
        data = b"\n#%d\n" % (len(valid) + extra) + valid + b"x" * extra + b"\n##\n"
        return _framed("framing-chunked", Channel.CHUNKED, data, Outcome.REPLY, MALFORMED,
                    "size too large")
    if variant == 2:  # non-digit size
        size = rng.choice([b"abc", b"1a", b"-5", b"+5", b" 5", b"0x10", b"\xff", b"5 "])
        data = b"\n#" + size + b"\n" + valid + b"\n##\n"
        return _framed("framing-chunked", Channel.CHUNKED, data, close, note="non-digit size")
    if variant == 3:  # zero and leading-zero sizes
        size = rng.choice([b"0", b"00", b"07", b"0%d" % len(valid)])
        data = b"\n#" + size + b"\n" + valid + b"\n##\n"
        return _framed("framing-chunked", Channel.CHUNKED, data, close, note="zero size")
    if variant == 4:  # huge declared size (beyond the maximum message or the RFC limit)
        size = rng.choice([AGENT_MAX_MESSAGE + 1, 2**31, 4294967295, 4294967296,
                           10**12, rng.randint(AGENT_MAX_MESSAGE + 1, 4294967295)])
        data = b"\n#%d\n" % size + valid[:rng.randint(0, len(valid))]
        return _framed("framing-chunked", Channel.CHUNKED, data, close, note="huge size")
    if variant == 5:  # missing end-of-chunks: glued onto the next message
        data = b"\n#%d\n" % len(valid) + valid + chunked(valid)
        return _framed("framing-chunked", Channel.CHUNKED, data, Outcome.REPLY, MALFORMED,
                    "missing end-of-chunks")
    if variant == 6:  # garbage between chunks
        half = len(valid) // 2
        junk = _random_bytes(rng, rng.randint(1, 40), exclude=b"\n")
        data = b"\n#%d\n" % half + valid[:half] + junk + chunked(valid[half:])
        return _framed("framing-chunked", Channel.CHUNKED, data, close, note="interleaved garbage")
    if variant == 7:  # end-of-chunks with no chunk
        return _framed("framing-chunked", Channel.CHUNKED, b"\n##\n", close, note="empty message")
    if variant == 8:  # base:1.0 framing on a base:1.1 session
        return _framed("framing-chunked", Channel.CHUNKED, eom(valid), close, note="eom in base:1.1")
    if variant == 9:  # bad end-of-chunks marker or header punctuation
        bad = rng.choice([b"\n#\n", b"\n##x", b"\n#%d#" % len(valid), b"#%d\n" % len(valid),
                          b"\r\n#%d\r\n" % len(valid), b"\n\n#%d\n" % len(valid)])
        return _framed("framing-chunked", Channel.CHUNKED, bad + valid + b"\n##\n", close,
                    note="bad header")
    # valid chunking of a message cut into many small chunks, but the content is truncated
    sizes = [rng.randint(1, 7) for _ in range(len(valid))]
    cut = rng.randint(1, len(valid) - 2)
    return _framed("framing-chunked", Channel.CHUNKED, chunked(valid[:cut], sizes), Outcome.REPLY,
                MALFORMED, "many chunks, truncated XML")


def gen_invalid_xml(rng: random.Random, traps: Traps) -> Case:
    """Messages that are not well-formed XML: ``malformed-message``."""
    valid = rng.choice(_valid_rpcs() + [edit(in_link("<qkdl_enable>true</qkdl_enable>"))])
    text = valid.decode()
    variant = rng.randrange(8)
    if variant == 0:
        data = text.replace("</rpc>", "</rcp>").encode()
    elif variant == 1:
        data = valid[: rng.randint(1, len(valid) - 2)]
    elif variant == 2:
        data = text.replace("message-id=", "message-id=\"x\" message-id=", 1).encode()
    elif variant == 3:
        pos = text.index(">") + 1
        data = (text[:pos] + rng.choice(["&", "&bogus;", "<", "&#0;", "&#xD800;"]) + text[pos:]).encode()
    elif variant == 4:
        pos = rng.randint(1, len(valid) - 1)
        data = valid[:pos] + bytes([rng.choice([0, 1, 8, 11, 12, 31])]) + valid[pos:]
    elif variant == 5:
        pos = text.index("<rpc") + 4
        data = (text[:pos] + " a='1" + text[pos:]).encode()  # unclosed attribute value
    elif variant == 6:
        data = valid.replace(b'message-id="', b'message-id="\xc3\x28\xff', 1)  # invalid UTF-8
    else:
        data = rng.choice([b"not xml at all", b"<", b"<rpc", b"<?xml version='1.0'?>",
                           b"<?xml version='9.9' encoding='bogus'?><rpc/>", b"\xef\xbb\xbf",
                           b"<a:rpc xmlns:b='x'/>", b"<rpc xmlns='" + NC.encode() + b"'"])
    return Case("invalid-xml", rng.choice([Channel.EOM, Channel.CHUNKED]), data, Outcome.REPLY,
                MALFORMED)


def gen_wrong_namespace(rng: random.Random, traps: Traps) -> Case:
    wrong = rng.choice(["urn:ietf:params:xml:ns:netconf:base:1.1", "urn:example:wrong", "",
                        NC + " ", NC.upper(), NODE_NS])
    variant = rng.randrange(4)
    if variant == 0:  # the <rpc> element itself in the wrong (or no) namespace
        data = f'<rpc xmlns="{wrong}" message-id="1"><get/></rpc>'.encode()
        return Case("wrong-namespace", rng.choice(list(Channel)[:2]), data, Outcome.REPLY,
                    MALFORMED, "rpc")
    if variant == 1:  # operation in the wrong namespace
        data = rpc(f'<get xmlns="{wrong}"/>')
        # a namespace name with a space is no URI reference: the parser may refuse it
        tags = {"operation-not-supported"} | ({"malformed-message"} if " " in wrong else set())
        return Case("wrong-namespace", Channel.CHUNKED, data, Outcome.REPLY, frozenset(tags),
                    "operation")
    if variant == 2:  # data nodes in an unknown namespace
        ns = rng.choice(["urn:example:wrong", "urn:etsi:qkd:yang:etsi-qkd-nodes", TYPES_NS + "x"])
        body = f'<qkd_node xmlns="{ns}"><qkdn_id>{QKDN_ID}</qkdn_id></qkd_node>'
        return Case("wrong-namespace", Channel.CHUNKED, edit(body), Outcome.REPLY,
                    frozenset({"unknown-namespace"}), "data")
    # a parameter of the operation in the wrong namespace
    data = rpc('<get-config><source xmlns="urn:example:wrong"><running/></source></get-config>')
    return Case("wrong-namespace", Channel.EOM, data, Outcome.REPLY,
                frozenset({"unknown-element", "missing-element"}), "parameter")


def gen_unknown_operation(rng: random.Random, traps: Traps) -> Case:
    name = _random_name(rng)
    while name in ("get", "get-config", "edit-config", "validate", "lock", "unlock",
                   "close-session", "kill-session", "copy-config", "delete-config", "commit"):
        name = _random_name(rng)
    if rng.random() < 0.2:
        # operations of NETCONF the agent does not offer (copy-config and delete-config it
        # implements; commit/discard-changes only with --candidate, off here)
        name = rng.choice(["commit", "discard-changes", "cancel-commit", "get-data",
                           "edit-data", "action"])
    ns = rng.choice([NC, NC, "urn:example:ops", NODE_NS, MON_NS])
    param = _random_name(rng)
    body = (f'<{name} xmlns="{ns}"/>' if rng.random() < 0.5 else
            f'<{name} xmlns="{ns}"><{param}>{rng.randint(0, 9)}</{param}></{name}>')
    return Case("unknown-operation", rng.choice([Channel.EOM, Channel.CHUNKED]), rpc(body),
                Outcome.REPLY, frozenset({"operation-not-supported"}), name)


def gen_bad_rpc(rng: random.Random, traps: Traps) -> Case:
    """Structurally wrong <rpc> elements and bad operation parameters."""
    variant = rng.randrange(10)
    if variant == 0:
        data = f'<rpc xmlns="{NC}"><get/></rpc>'.encode()
        tags = {"missing-attribute"}
    elif variant == 1:
        data, tags = rpc(""), {"missing-element"}
    elif variant == 2:
        data, tags = rpc("<get/><get/>"), {"malformed-message", "bad-element"}
    elif variant == 3:
        data, tags = rpc(f"<get><{_random_name(rng)}/></get>"), {"unknown-element"}
    elif variant == 4:
        data, tags = rpc('<get><filter type="regex">.*</filter></get>'), {"bad-attribute"}
    elif variant == 5:
        data, tags = rpc("<get-config/>"), {"missing-element"}
    elif variant == 6:
        ds = rng.choice(["candidate", "startup"])
        data, tags = rpc(f"<get-config><source><{ds}/></source></get-config>"), {
            "operation-not-supported"}
    elif variant == 7:
        data = rpc(f"<kill-session><session-id>{rng.choice(['0', 'abc', '-1', '', '99999', '²', '1_0'])}"
                   "</session-id></kill-session>")
        tags = {"invalid-value"}
    elif variant == 8:
        data = rpc(f'<create-subscription xmlns="{NOTIF_NS}"><stream>{_random_name(rng)}'
                   "</stream></create-subscription>")
        tags = {"invalid-value"}
    else:
        data = rpc(f'<get-schema xmlns="{MON_NS}"><identifier>{_random_name(rng)}-nope'
                   "</identifier></get-schema>")
        tags = {"invalid-value"}
    return Case("bad-rpc", rng.choice([Channel.EOM, Channel.CHUNKED]), data, Outcome.REPLY,
                frozenset(tags), str(variant))


_UINT32_BAD = ["-1", "4294967296", "99999999999999999999", "abc", "1.5", "", "0x10", "1e3",
               "--1", "４２", "1_000", "٣"]
_BOOL_BAD = ["yes", "no", "1", "0", "TRUE", "False", "", "truee"]
_UUID_BAD = ["not-a-uuid", "10000000-0000-4000-8000-00000000000", "g0000000-0000-4000-8000-000000000001",
             "", "10000000000040008000000000000001", "{10000000-0000-4000-8000-000000000001}"]
_DECIMAL_BAD = ["abc", "1.2.3", "1e5", "4.12345", "", "--1", "NaN", "inf", "99999999999999999999.9"]


def gen_edit_config(rng: random.Random, traps: Traps) -> Case:
    """Invalid <edit-config> content: types, ranges, identityrefs, unknown and config-false
    leaves, bad nc:operation values and bad edit parameters. None may change the datastore."""
    v = rng.randrange(16)
    iv = frozenset({"invalid-value"})
    if v == 0:
        leaf = rng.choice(["app_priority", "app_qos/max_bandwidth", "app_qos/ttl"])
        value = rng.choice(_UINT32_BAD)
        inner = (f"<{leaf}>{value}</{leaf}>" if "/" not in leaf else
                 f"<app_qos><{leaf[8:]}>{value}</{leaf[8:]}></app_qos>")
        body, tags, note = in_app(inner), iv, f"uint32 {leaf}={value!r}"
    elif v == 1:
        value = rng.choice(_UINT32_BAD)
        body, tags, note = (in_link(f"<virt_bandwidth>{value}</virt_bandwidth>")
                            if rng.random() < 0.5 else
                            in_interface(f"<qkdi_att_point><port>{value}</port></qkdi_att_point>"),
                            iv, f"uint32 {value!r}")
    elif v == 2:
        value = rng.choice(_BOOL_BAD)
        body, tags, note = in_link(f"<qkdl_enable>{value}</qkdl_enable>"), iv, f"boolean {value!r}"
    elif v == 3:
        value = rng.choice(_UUID_BAD)
        body, tags, note = in_app(f"<local_qkdn_id>{value}</local_qkdn_id>"), iv, f"uuid {value!r}"
    elif v == 4:
        value = rng.choice(_DECIMAL_BAD)
        body, tags, note = in_link(f"<phys_channel_att>{value}</phys_channel_att>"), iv, \
            f"decimal64 {value!r}"
    elif v == 5:  # identityrefs: unknown identity, wrong base, unknown prefix, no such module
        value = rng.choice(["t:NOPE", "t:TRANSMITTER", "t:CLIENT", "zz:PHYS", "PHYS_",
                            "t:", ":PHYS", "x:PHYS"])
        extra = ' xmlns:x="urn:example:no-module"' if value.startswith("x:") else ""
        body = node(f"<qkd_links><qkd_link><qkdl_id>{LINK_ID}</qkdl_id>"
                    f"<qkdl_type>{value}</qkdl_type></qkd_link></qkd_links>", extra)
        tags, note = iv, f"identityref {value!r}"
    elif v == 6:
        leaf = rng.choice(["phys_qkd_role", "app_type"])
        value = rng.choice(["t:PHYS", "t:NOPE", "t:DV-QKD", "q:CLIENT"])
        body = (in_link(f"<{leaf}>{value}</{leaf}>") if leaf == "phys_qkd_role"
                else in_app(f"<{leaf}>{value}</{leaf}>"))
        tags, note = iv, f"identityref {leaf}={value!r}"
    elif v == 7:  # unknown leaves
        name = _random_name(rng)
        where = rng.choice([node, in_link, in_app, in_interface])
        body, tags, note = where(f"<{name}>1</{name}>"), frozenset({"unknown-element"}), name
    elif v == 8:  # config false leaves
        body, note = rng.choice([
            (node("<qkdn_status>t:OPERATING</qkdn_status>"), "qkdn_status"),
            (in_app("<app_status>t:ON</app_status>"), "app_status"),
            (in_interface("<qkdi_status>t:UP</qkdi_status>"), "qkdi_status"),
            (in_link("<qkdl_performance><skr>5</skr></qkdl_performance>"), "skr"),
            (in_app("<creation_time>2026-01-01T00:00:00Z</creation_time>"), "creation_time"),
        ])
        tags = frozenset({"bad-element"})
    elif v == 9:  # bad nc:operation values
        value = rng.choice(["frobnicate", "MERGE", "none", "", "delete ", "insert", _random_name(rng)])
        body = in_link("<qkdl_enable>false</qkdl_enable>", f' nc:operation="{value}"')
        tags, note = frozenset({"bad-attribute"}), f"operation {value!r}"
    elif v == 10:  # unknown attribute
        body = in_link("", f' {_random_name(rng, 5)}="1"')
        tags, note = frozenset({"unknown-attribute"}), "attribute"
    elif v == 11:  # create existing / delete missing
        if rng.random() < 0.5:
            body = in_link("", ' nc:operation="create"')
            tags, note = frozenset({"data-exists"}), "create existing"
        else:
            body = node(f'<qkd_links><qkd_link nc:operation="delete"><qkdl_id>{MISSING_ID}'
                        "</qkdl_id></qkd_link></qkd_links>")
            tags, note = frozenset({"data-missing"}), "delete missing"
    elif v == 12:  # list entry without its key
        body = node("<qkd_links><qkd_link><qkdl_enable>true</qkdl_enable></qkd_link></qkd_links>")
        tags, note = frozenset({"missing-element"}), "missing key"
    elif v == 13:  # bad edit parameters
        param = rng.choice(["default-operation", "test-option", "error-option"])
        value = rng.choice(["bogus", "", "MERGE", "delete", "test"])
        data = edit(in_link("<qkdl_enable>true</qkdl_enable>"), f"<{param}>{value}</{param}>")
        return Case("edit-config", Channel.CHUNKED, data, Outcome.REPLY, iv, f"{param}={value!r}")
    elif v == 14:  # bad targets
        target, tags = rng.choice([("<candidate/>", {"operation-not-supported"}),
                                   ("<startup/>", {"operation-not-supported"}),
                                   ("<bogus/>", {"unknown-element"}),
                                   ("", {"missing-element"}),
                                   ("<running/><running/>", {"bad-element"})])
        return Case("edit-config", Channel.CHUNKED, edit(in_link(""), target=target),
                    Outcome.REPLY, frozenset(tags), f"target {target!r}")
    else:  # <config> missing, or holding loose text
        if rng.random() < 0.5:
            data = rpc("<edit-config><target><running/></target></edit-config>")
            return Case("edit-config", Channel.CHUNKED, data, Outcome.REPLY,
                        frozenset({"missing-element"}), "no config")
        body, tags, note = "loose text" + node(""), MALFORMED, "config text"
    return Case("edit-config", rng.choice([Channel.EOM, Channel.CHUNKED]), edit(body),
                Outcome.REPLY, tags, note)


def gen_entities(rng: random.Random, traps: Traps) -> Case:
    """Billion laughs, external entities (file:// and http://), external DTDs, parameter
    entities, XInclude: a document type declaration is refused and nothing is fetched."""
    variant = rng.randrange(8)
    body = "<get-config><source><running/></source></get-config>"
    if variant == 0:
        depth = rng.randint(3, 10)
        ents = ['<!ENTITY lol0 "lol">'] + [
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, depth)]
        doc = (f"<!DOCTYPE rpc [{''.join(ents)}]>"
               f'<rpc xmlns="{NC}" message-id="&lol{depth - 1};">{body}</rpc>')
        note = "billion laughs"
    elif variant in (1, 2):
        url = traps.file_url if variant == 1 else traps.http_url
        doc = (f'<!DOCTYPE rpc [<!ENTITY xxe SYSTEM "{url}">]>'
               f'<rpc xmlns="{NC}" message-id="1"><get-schema xmlns="{MON_NS}">'
               f"<identifier>&xxe;</identifier></get-schema></rpc>")
        note = "external entity " + url.split(":")[0]
    elif variant == 3:
        url = rng.choice([traps.file_url, traps.http_url])
        doc = f'<!DOCTYPE rpc SYSTEM "{url}"><rpc xmlns="{NC}" message-id="1">{body}</rpc>'
        note = "external DTD"
    elif variant == 4:
        url = rng.choice([traps.file_url, traps.http_url])
        doc = (f'<!DOCTYPE rpc [<!ENTITY % p SYSTEM "{url}"> %p;]>'
               f'<rpc xmlns="{NC}" message-id="1">{body}</rpc>')
        note = "parameter entity"
    elif variant == 5:  # the same, encoded in UTF-16 (no ASCII "<!DOCTYPE" on the wire)
        url = rng.choice([traps.file_url, traps.http_url])
        doc = (f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE rpc [<!ENTITY xxe SYSTEM "{url}">]>'
               f'<rpc xmlns="{NC}" message-id="&xxe;">{body}</rpc>')
        data = doc.encode("utf-16")
        return Case("entities", rng.choice([Channel.EOM, Channel.CHUNKED]), data, Outcome.REPLY,
                    MALFORMED, "utf-16 external entity")
    elif variant == 6:  # XInclude is plain markup here; it must not be processed
        url = rng.choice([traps.file_url, traps.http_url])
        doc = (f'<rpc xmlns="{NC}" message-id="1"><get-schema xmlns="{MON_NS}"><identifier>'
               f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{url}" parse="text"/>'
               "</identifier></get-schema></rpc>")
        return Case("entities", Channel.CHUNKED, doc.encode(), Outcome.REPLY,
                    frozenset({"invalid-value", "bad-element", "unknown-element"}), "xinclude")
    else:  # internal entity bomb via quadratic blowup
        big = "A" * rng.randint(1000, 50000)
        doc = (f'<!DOCTYPE rpc [<!ENTITY a "{big}">]>'
               f'<rpc xmlns="{NC}" message-id="1"><get-schema xmlns="{MON_NS}"><identifier>'
               + "&a;" * rng.randint(100, 2000) + "</identifier></get-schema></rpc>")
        note = "quadratic blowup"
    return Case("entities", rng.choice([Channel.EOM, Channel.CHUNKED]), doc.encode(),
                Outcome.REPLY, MALFORMED, note)


def gen_large(rng: random.Random, traps: Traps) -> Case:
    """Large but bounded hostile shapes: deep nesting, many attributes, long names."""
    variant = rng.randrange(4)
    if variant == 0:
        depth = rng.randint(300, 5000)
        data = rpc("<get><filter>" + "<a>" * depth + "</a>" * depth + "</filter></get>")
        return Case("large", Channel.CHUNKED, data, Outcome.REPLY, MALFORMED, f"depth {depth}")
    if variant == 1:
        n = rng.randint(100, 3000)
        attrs = " ".join(f'a{i}="{i}"' for i in range(n))
        data = rpc(f"<{_random_name(rng)} {attrs}/>")
        return Case("large", Channel.CHUNKED, data, Outcome.REPLY,
                    frozenset({"operation-not-supported"}), f"{n} attributes")
    if variant == 2:
        name = _random_name(rng, rng.randint(1000, 100000))
        # libxml2 refuses names longer than XML_MAX_NAME_LENGTH (50000) without XML_PARSE_HUGE
        tags = {"operation-not-supported"} if len(name) <= 50000 else MALFORMED
        return Case("large", Channel.EOM, rpc(f"<{name}/>"), Outcome.REPLY, frozenset(tags),
                    f"name of {len(name)} characters")
    pad = " " * rng.randint(10000, 500000)
    return Case("large", Channel.CHUNKED, rpc(f"<nope{pad}/>"), Outcome.REPLY,
                frozenset({"operation-not-supported"}), "padding")


#: The agent's message for an exception no layer turned into a proper rpc-error.
INTERNAL_ERROR = b"<error-message xml:lang=\"en\">internal error</error-message>"

_HAVOC_SEEDS = [
    rpc("<get/>"),
    PROBE_GET,
    GET_CONFIG,
    rpc(f'<get-config><source><running/></source><filter type="subtree"><qkd_node '
        f'xmlns="{NODE_NS}"><qkd_links><qkd_link><qkdl_id>{LINK_ID}</qkdl_id><qkdl_enable/>'
        "</qkd_link></qkd_links></qkd_node></filter></get-config>"),
    rpc(f'<get><filter type="xpath" xmlns:n="{NODE_NS}" select="/n:qkd_node/n:qkd_links/'
        f"n:qkd_link[n:qkdl_id='{LINK_ID}']/n:qkdl_performance\"/></get>"),
    rpc(f"<get-schema xmlns='{MON_NS}'><identifier>etsi-qkd-node-types</identifier>"
        "<version>2022-01-30</version><format>yang</format></get-schema>"),
    rpc("<validate><source><running/></source></validate>"),
    # no kill-session: a mutated session-id may name a live session of the run itself
]
_HAVOC_TOKENS = [b"<", b">", b"/>", b"</", b'="', b'"', b"'", b":", b"&amp;", b"&#x41;",
                 b"]]>", b"<![CDATA[x]]>", b"<!-- c -->", b"<?pi x?>", b'xmlns="urn:x"',
                 b'xmlns:n="' + NODE_NS.encode() + b'"', b"n:", b'type="xpath"',
                 b'select="//*"', b'select="/n:qkd_node/.."', b"[1]", b"\n", b"\x00", b"\xc3",
                 b"qkd_node", b"qkdl_id", b"running", b"filter", b"-1", b"4294967296"]
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _havoc(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(out) + 1)
        move = rng.randrange(4)
        if move == 0 and out:
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif move == 1:
            del out[pos:pos + rng.randint(1, 12)]
        elif move == 2:
            out[pos:pos] = out[max(0, pos - 20):pos]
        else:
            out[pos:pos] = rng.choice(_HAVOC_TOKENS)
    return bytes(out) or b"x"


def gen_havoc(rng: random.Random, traps: Traps) -> Case:
    """Random byte-level mutations of read-only RPCs. A result that is not well-formed XML
    (or carries a DOCTYPE) must get ``malformed-message``; anything else some rpc-reply, and
    never an internal error."""
    data = _havoc(rng.choice(_HAVOC_SEEDS), rng)
    try:
        root = etree.fromstring(data, _SAFE_PARSER)
        well_formed = root is not None and b"<!DOCTYPE" not in data and b"<!ENTITY" not in data
    except etree.XMLSyntaxError:
        well_formed = False
    if not well_formed:
        return Case("havoc", Channel.CHUNKED, data, Outcome.REPLY, MALFORMED, "malformed")
    return Case("havoc", Channel.CHUNKED, data, Outcome.ANY_REPLY, note="well-formed")


def gen_hello(rng: random.Random, traps: Traps) -> Case:
    """Bad client hellos end the session (RFC 6241 §8.1)."""
    variant = rng.randrange(6)
    data = [
        hello("urn:example:not-base"),
        hello(),
        f'<hello xmlns="{NC}"><capabilities><capability>{BASE_1_0}</capability>'
        "</capabilities><session-id>4</session-id></hello>".encode(),
        rpc("<get/>"),
        b"<hello",
        f'<!DOCTYPE hello [<!ENTITY x SYSTEM "{traps.http_url}">]><hello xmlns="{NC}">'
        f"<capabilities><capability>&x;</capability></capabilities></hello>".encode(),
    ][variant]
    return Case("hello", Channel.HELLO, eom(data), Outcome.CLOSE, note=str(variant), framed=True)


def oversized_cases() -> list[Case]:
    """Messages beyond the agent's 16 MiB bound in both framings: the session is closed."""
    filler = b"<!-- " + b"x" * (AGENT_MAX_MESSAGE + 1024) + b" -->"
    half = AGENT_MAX_MESSAGE // 2 + 1
    return [
        Case("oversized", Channel.CHUNKED,
             b"\n#%d\n" % half + b" " * half + b"\n#%d\n" % half, Outcome.CLOSE,
             note="chunks summing beyond the limit", framed=True),
        Case("oversized", Channel.EOM, rpc("<get/>")[:-6] + filler, Outcome.CLOSE,
             note="base:1.0 without delimiter", framed=True),
    ]


def _on_the_wire(case: Case, rng: random.Random) -> Case:
    """Frame a message case correctly for its channel (chunked: random valid chunk sizes)."""
    if case.framed:
        return case
    if case.channel is Channel.EOM:
        data = eom(case.data)
    else:
        sizes = None if rng.random() < 0.5 else [rng.randint(1, 200) for _ in range(64)]
        data = chunked(case.data, sizes)
    return Case(case.kind, case.channel, data, case.outcome, case.tags, case.note, framed=True)


#: Case class → (generator, weight).
GENERATORS: dict[str, tuple[Callable[[random.Random, Traps], Case], int]] = {
    "framing-eom": (gen_framing_eom, 12),
    "framing-chunked": (gen_framing_chunked, 16),
    "invalid-xml": (gen_invalid_xml, 12),
    "wrong-namespace": (gen_wrong_namespace, 6),
    "unknown-operation": (gen_unknown_operation, 6),
    "bad-rpc": (gen_bad_rpc, 8),
    "edit-config": (gen_edit_config, 22),
    "entities": (gen_entities, 10),
    "large": (gen_large, 2),
    "havoc": (gen_havoc, 12),
    "hello": (gen_hello, 2),
}


def generate_cases(count: int, seed: int, traps: Traps, oversized: int = 1) -> list[Case]:
    """``count`` cases drawn with ``random.Random(seed)``; ``oversized`` messages beyond
    16 MiB (alternately chunked, 8 MiB sent, and base:1.0, 17 MiB sent) are spread over the
    run (they count towards ``count``)."""
    rng = random.Random(seed)
    names = list(GENERATORS)
    weights = [GENERATORS[n][1] for n in names]
    big = [oversized_cases()[i % 2] for i in range(oversized)]
    cases = [_on_the_wire(GENERATORS[rng.choices(names, weights)[0]][0](rng, traps), rng)
             for _ in range(max(0, count - len(big)))]
    # the first two of each framing open the run, inside the warm-up: holding a message of
    # the maximum size is part of the agent's due working set, and the allocator's high-water
    # mark for it settles after a couple of them. The others are spread over the run.
    lead, spread = big[:4], big[4:]
    for i, case in enumerate(spread):
        cases.insert((i + 1) * len(cases) // (len(spread) + 1), case)
    return lead + cases


# --------------------------------------------------------------------------- the agent and traps


class AgentProcess:
    """A real ``qkdn agent`` subprocess on 127.0.0.1 with an ephemeral port."""

    def __init__(self, workdir: Path, *, password: str | None = PASSWORD,
                 authorized_keys: Path | None = None, username: str = USERNAME) -> None:
        self.workdir = workdir
        self.username = username
        self.password = password
        config = workdir / "initial.json"
        config.write_text(json.dumps(initial_config()))
        cmd = [sys.executable, "-m", "qkdn.cli", "agent", "--host", "127.0.0.1", "--port", "0",
               "--username", username, "--initial-config", str(config)]
        if password is not None:
            cmd += ["--password", password]
        if authorized_keys is not None:
            cmd += ["--authorized-keys", str(authorized_keys)]
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._log = open(workdir / "agent.log", "wb")  # noqa: SIM115 - lives as long as the agent
        self.proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                                     stderr=self._log)
        self.port = self._read_port()

    def _read_port(self) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        match = re.search(r"listening on [\d.]+:(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"agent did not start: {line!r}; see {self.workdir / 'agent.log'}")
        return int(match.group(1))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident set size of the agent process (0 once it has exited)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


class ConnectionTrap:
    """A listening socket on 127.0.0.1 that counts every connection it receives."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


@contextmanager
def traps_in(workdir: Path) -> Iterator[tuple[Traps, ConnectionTrap]]:
    token = "QKDN-CANARY-" + os.urandom(12).hex()
    canary = workdir / "canary.txt"
    canary.write_text(token)
    trap = ConnectionTrap()
    try:
        yield Traps(canary, token, trap.port), trap
    finally:
        trap.close()


# --------------------------------------------------------------------------- client side


class SessionClosed(Exception):
    pass


class RawSession:
    """One NETCONF channel over an asyncssh connection, sending raw bytes."""

    def __init__(self, reader: asyncssh.SSHReader, writer: asyncssh.SSHWriter, framing: Channel):
        self.reader, self.writer, self.framing = reader, writer, framing
        self.buffer = bytearray()
        self.received = 0
        self.closed = False

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection, framing: Channel,
                   send_hello: bool = True) -> RawSession:
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        session = cls(reader, writer, framing)
        server_hello = await session.read_message(framing_override=Channel.EOM)
        if b"<hello" not in server_hello:
            raise RuntimeError(f"no server hello: {server_hello[:200]!r}")
        if send_hello:
            caps = (BASE_1_0, BASE_1_1) if framing is Channel.CHUNKED else (BASE_1_0,)
            await session.send(eom(hello(*caps)))
        return session

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), REPLY_TIMEOUT * 3)
        except (TimeoutError, asyncssh.Error, BrokenPipeError, ConnectionError):
            self.closed = True

    def _take(self, framing: Channel) -> bytes | None:
        buf = self.buffer
        if framing is Channel.EOM:
            i = buf.find(EOM)
            if i < 0:
                return None
            msg = bytes(buf[:i])
            del buf[: i + len(EOM)]
            return msg
        msg, pos = bytearray(), 0
        while True:  # a strict reading of the agent's chunks: it must frame correctly
            m = re.match(rb"\n#(#|[1-9][0-9]{0,9})\n", bytes(buf[pos:pos + 13]))
            if m is None:
                if len(buf) - pos >= 13 or (len(buf) > pos and not buf[pos:pos + 1] == b"\n"):
                    raise RuntimeError(f"agent sent bad chunk framing: {bytes(buf[pos:pos+20])!r}")
                return None
            if m.group(1) == b"#":
                del buf[: pos + 4]
                return bytes(msg)
            size = int(m.group(1))
            start = pos + m.end()
            if len(buf) < start + size:
                return None
            msg += buf[start:start + size]
            pos = start + size

    async def read_message(self, timeout: float = REPLY_TIMEOUT,
                           framing_override: Channel | None = None) -> bytes:
        framing = framing_override or self.framing
        deadline = time.monotonic() + timeout
        while True:
            msg = self._take(framing)
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            data = await asyncio.wait_for(self.reader.read(1 << 20), left)
            if not data:
                self.closed = True
                raise SessionClosed
            self.received += len(data)
            self.buffer += data

    async def wait_closed(self, timeout: float = REPLY_TIMEOUT) -> bytes:
        """Wait for EOF; the bytes the agent sent before closing."""
        deadline = time.monotonic() + timeout
        got = bytearray(self.buffer)
        self.buffer.clear()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            data = await asyncio.wait_for(self.reader.read(1 << 20), left)
            if not data:
                self.closed = True
                return bytes(got)
            got += data

    async def send_message(self, message: bytes) -> None:
        """Send one well-formed message in this session's framing."""
        await self.send(chunked(message) if self.framing is Channel.CHUNKED else eom(message))

    def close(self) -> None:
        self.closed = True
        self.writer.close()


_REPLY_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                huge_tree=True)


def error_tags(reply: bytes) -> tuple[str, list[str]]:
    """(root local name, error-tags) of a reply."""
    root = etree.fromstring(reply, _REPLY_PARSER)
    tags = [e.text or "" for e in root.iter(f"{{{NC}}}error-tag")]
    return etree.QName(root).localname, tags


# --------------------------------------------------------------------------- runner


@dataclass
class FuzzResult:
    seed: int
    parallel: int = 1
    cases: int = 0
    seconds: float = 0.0
    per_class: Counter = field(default_factory=Counter)
    per_outcome: Counter = field(default_factory=Counter)
    error_tags: Counter = field(default_factory=Counter)
    closed_sessions: int = 0
    mismatches: list[dict] = field(default_factory=list)
    mismatch_count: int = 0
    probes: int = 0
    probe_failures: int = 0
    rss_start: int = 0
    rss_end: int = 0
    rss_peak: int = 0
    rss_samples: list[tuple[int, float]] = field(default_factory=list)  # (cases run, MiB)
    entity_resolutions: int = 0
    trap_connections: int = 0
    agent_alive: bool = True
    datastore_unchanged: bool = False
    bytes_sent: int = 0
    timed_cases: int = 0  # cases run after the warm-up, in ``seconds``
    aborted: str = ""

    @property
    def rss_growth(self) -> int:
        return self.rss_end - self.rss_start

    def as_dict(self) -> dict:
        mib = 1024 * 1024
        return {
            "seed": self.seed,
            "parallel_clients": self.parallel,
            "cases": self.cases,
            "seconds": round(self.seconds, 2),
            "cases_per_second": (round(self.timed_cases / self.seconds, 1)
                                 if self.seconds else 0.0),
            "aborted": self.aborted,
            "bytes_sent": self.bytes_sent,
            "per_class": dict(sorted(self.per_class.items())),
            "per_outcome": dict(sorted(self.per_outcome.items())),
            "error_tags": dict(sorted(self.error_tags.items())),
            "closed_sessions": self.closed_sessions,
            "mismatch_count": self.mismatch_count,
            "mismatches": self.mismatches,
            "probes": self.probes,
            "probe_failures": self.probe_failures,
            "rss_start_mib": round(self.rss_start / mib, 1),
            "rss_end_mib": round(self.rss_end / mib, 1),
            "rss_peak_mib": round(self.rss_peak / mib, 1),
            "rss_growth_mib": round(self.rss_growth / mib, 2),
            "rss_samples_mib": self.rss_samples,
            "entity_resolutions": self.entity_resolutions,
            "trap_connections": self.trap_connections,
            "agent_alive": self.agent_alive,
            "datastore_unchanged": self.datastore_unchanged,
        }


class FuzzRunner:
    def __init__(self, agent: AgentProcess, traps: Traps, result: FuzzResult) -> None:
        self.agent = agent
        self.traps = traps
        self.result = result
        self.conn: asyncssh.SSHClientConnection | None = None
        self.sessions: dict[Channel, RawSession] = {}
        self.probe_session: RawSession | None = None
        self._token = traps.canary_token.encode()

    async def connect(self) -> None:
        self.conn = await asyncssh.connect(
            "127.0.0.1", self.agent.port, username=self.agent.username,
            password=self.agent.password, known_hosts=None, client_keys=None, agent_path=None,
        )
        self.probe_session = await RawSession.open(self.conn, Channel.CHUNKED)

    async def session(self, channel: Channel) -> RawSession:
        existing = self.sessions.get(channel)
        if existing is None or existing.closed:
            assert self.conn is not None
            existing = await RawSession.open(self.conn, channel)
            self.sessions[channel] = existing
        return existing

    def _mismatch(self, case: Case, why: str) -> None:
        self.result.mismatch_count += 1
        if len(self.result.mismatches) < 20:
            self.result.mismatches.append({"class": case.kind, "note": case.note, "why": why,
                                           "data": case.data[:300].decode("latin-1")})

    def _check_leak(self, data: bytes) -> None:
        if self._token in data:
            self.result.entity_resolutions += 1

    async def run_case(self, case: Case) -> None:
        r = self.result
        r.cases += 1
        r.per_class[case.kind] += 1
        r.bytes_sent += len(case.data)
        if case.channel is Channel.HELLO:
            assert self.conn is not None
            session = await RawSession.open(self.conn, Channel.EOM, send_hello=False)
        else:
            session = await self.session(case.channel)
        await session.send(case.data)
        if case.outcome is Outcome.CLOSE:
            try:
                before = await session.wait_closed()
            except TimeoutError:
                self._mismatch(case, "session not closed")
                session.close()
                return
            self._check_leak(before)
            r.closed_sessions += 1
            r.per_outcome["closed"] += 1
            if before:
                self._mismatch(case, f"replied before closing: {before[:200]!r}")
            return
        try:
            reply = await session.read_message()
        except SessionClosed:
            r.closed_sessions += 1
            r.per_outcome["closed"] += 1
            self._mismatch(case, "session closed instead of an rpc-error")
            return
        except TimeoutError:
            self._mismatch(case, "no reply")
            session.close()
            return
        self._check_leak(reply)
        root, tags = error_tags(reply)
        r.per_outcome["rpc-error" if tags else root] += 1
        for tag in tags:
            r.error_tags[tag] += 1
        if case.outcome is Outcome.ANY_REPLY:
            if root != "rpc-reply" or INTERNAL_ERROR in reply:
                self._mismatch(case, f"expected a reply, got {reply[:300]!r}")
            return
        if root != "rpc-reply" or not tags:
            self._mismatch(case, f"expected rpc-error {sorted(case.tags)}, got {reply[:300]!r}")
        elif tags[0] not in case.tags:
            self._mismatch(case, f"expected {sorted(case.tags)}, got {tags}")

    async def probe(self) -> None:
        """A well-formed <get> on the clean session and on every fuzzed session still open."""
        targets = [self.probe_session] + [s for s in self.sessions.values() if not s.closed]
        for session in targets:
            assert session is not None
            self.result.probes += 1
            try:
                await session.send_message(PROBE_GET)
                reply = await session.read_message()
                ok = QKDN_ID.encode() in reply and b"rpc-error" not in reply
            except (TimeoutError, SessionClosed):
                ok = False
            if not ok:
                self.result.probe_failures += 1
        rss = self.agent.rss_bytes()
        self.result.rss_peak = max(self.result.rss_peak, rss)
        self.result.rss_samples.append((self.result.cases, round(rss / 2**20, 1)))

    async def get_config(self) -> bytes:
        assert self.probe_session is not None
        await self.probe_session.send_message(GET_CONFIG)
        return await self.probe_session.read_message()

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            await self.conn.wait_closed()


async def _run(agent: AgentProcess, traps: Traps, trap: ConnectionTrap, cases: list[Case],
               seed: int, batch: int, warmup: int, parallel: int) -> FuzzResult:
    result = FuzzResult(seed=seed, parallel=parallel)
    runners = [FuzzRunner(agent, traps, result) for _ in range(parallel)]
    try:
        for runner in runners:  # one SSH connection each
            await runner.connect()
        first = runners[0]
        before = await first.get_config()
        # warm the agent up (caches, allocator high-water mark of one maximum-size message)
        # before the RSS baseline
        for case in cases[:warmup]:
            await first.run_case(case)
        await first.probe()
        result.rss_start = agent.rss_bytes()
        started = time.monotonic()
        timed = cases[warmup:]

        async def work(runner: FuzzRunner, share: list[Case]) -> None:
            for i, case in enumerate(share, start=1):
                await runner.run_case(case)
                result.timed_cases += 1
                if i % batch == 0:
                    await runner.probe()
            await runner.probe()

        # the workers run side by side, each over its own connection and sessions; the
        # oversized messages all go to the first, so that two of them are never buffered at
        # once (that would measure concurrency, not growth)
        shares: list[list[Case]] = [[] for _ in runners]
        for k, case in enumerate(timed):
            shares[0 if case.kind == "oversized" else k % parallel].append(case)
        await asyncio.gather(*(work(r, share) for r, share in zip(runners, shares)))
        result.seconds = time.monotonic() - started
        result.rss_end = agent.rss_bytes()
        result.datastore_unchanged = (await first.get_config()) == before
    except (asyncssh.Error, OSError, RuntimeError, SessionClosed, TimeoutError) as exc:
        # the agent died or stopped answering: report it rather than lose the figures
        result.aborted = f"{type(exc).__name__}: {exc}"
    finally:
        for runner in runners:
            await runner.close()
        # let a late fetch (there must be none) reach the trap, and a dying agent finish dying
        await asyncio.sleep(0.3)
        result.agent_alive = agent.alive()
        result.trap_connections = trap.connections
    return result


def run_fuzz(cases: int = 1000, seed: int = 1, *, oversized: int = 1, batch: int = 100,
             parallel: int = 1, agent: AgentProcess | None = None) -> dict:
    """Run ``cases`` seeded fuzz cases against ``agent`` (or a fresh agent, stopped after);
    the figures. With ``parallel`` > 1 the cases after the warm-up are shared round-robin
    by that many clients running concurrently, each over its own SSH connection (oversized
    messages all by the first).

    ``oversized`` messages beyond the 16 MiB bound are included. The result dict holds counts
    per class and outcome, error-tags seen, closed sessions, mismatches with the expected
    outcome, probe failures, RSS figures, entity resolutions and trap connections.
    """
    with tempfile.TemporaryDirectory(prefix="qkdn-fuzz-") as tmp:
        work = Path(tmp)
        with traps_in(work) as (traps, trap):
            plan = generate_cases(cases, seed, traps, oversized)
            running = agent if agent is not None else AgentProcess(work)
            try:
                warmup = min(200, len(plan) // 10)
                result = asyncio.run(
                    _run(running, traps, trap, plan, seed, batch, warmup, parallel))
            finally:
                if agent is None:
                    running.stop()
    return result.as_dict()


def write_figures(path: Path, figures: dict, item: str = "netconf_fuzz") -> None:
    """Merge ``figures`` into ``path`` as ``{"items": {item: figures}}``, keeping the other
    items already there."""
    try:
        existing = json.loads(path.read_text())
    except (OSError, ValueError):
        existing = {}
    if not isinstance(existing, dict):
        existing = {}
    items = existing.setdefault("items", {})
    items[item] = figures
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


class LiveAgent:
    """A running agent and one open base:1.1 session, driven synchronously (for tests)."""

    def __init__(self, workdir: Path, agent: AgentProcess | None = None) -> None:
        self._own_agent = agent is None
        self.agent = agent if agent is not None else AgentProcess(workdir)
        self.loop = asyncio.new_event_loop()
        try:
            self.conn = self.loop.run_until_complete(asyncssh.connect(
                "127.0.0.1", self.agent.port, username=USERNAME, password=PASSWORD,
                known_hosts=None, client_keys=None, agent_path=None))
            self.session = self._new_session()
        except BaseException:
            self.close()
            raise

    def _new_session(self) -> RawSession:
        return self.loop.run_until_complete(RawSession.open(self.conn, Channel.CHUNKED))

    def request(self, message: bytes) -> bytes:
        """Send one well-formed message; the reply (a fresh session if the last one closed)."""
        if self.session.closed:
            self.session = self._new_session()

        async def exchange() -> bytes:
            await self.session.send_message(message)
            return await self.session.read_message()

        return self.loop.run_until_complete(exchange())

    def send_raw(self, data: bytes, settle: float = 0.03, *, framing: Channel = Channel.CHUNKED,
                 send_hello: bool = True) -> tuple[list[bytes], bool]:
        """Send raw bytes on a fresh session (after its client hello unless ``send_hello`` is
        false: then ``data`` must bring one); (the messages the agent sent back within
        ``settle`` seconds of quiet, read in ``framing``, and whether it closed the session)."""

        async def exchange() -> tuple[list[bytes], bool]:
            session = await RawSession.open(self.conn, framing, send_hello=send_hello)
            await session.send(data)
            messages: list[bytes] = []
            try:
                while True:
                    messages.append(await session.read_message(timeout=settle))
            except SessionClosed:
                return messages, True
            except TimeoutError:
                return messages, session.closed
            finally:
                session.close()

        return self.loop.run_until_complete(exchange())

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
            self.loop.run_until_complete(conn.wait_closed())
        self.loop.close()
        if self._own_agent:
            self.agent.stop()
