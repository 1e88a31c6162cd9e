"""Structured logs: one JSON object per line with node and session."""

from __future__ import annotations

import io
import json
import logging
import threading

from qkdn.structured_logging import (
    JsonFormatter,
    bind_session,
    bound_session,
    configure_logging,
    current_session,
    unbind_session,
)


def _record(msg="stored %d key(s)", args=(3,), exc_info=None):
    return logging.LogRecord("kms.relay", logging.INFO, __file__, 1, msg, args, exc_info)


def test_json_line_fields():
    line = JsonFormatter("2").format(_record())
    body = json.loads(line)
    assert body["node"] == "2" and body["logger"] == "kms.relay" and body["level"] == "INFO"
    assert body["msg"] == "stored 3 key(s)" and "session" not in body
    assert body["ts"].endswith("Z") and "T" in body["ts"]


def test_session_from_context_and_from_extra():
    with bound_session("s-1"):
        assert json.loads(JsonFormatter("0").format(_record()))["session"] == "s-1"
    assert current_session() is None
    record = _record()
    record.session = "s-2"
    assert json.loads(JsonFormatter("0").format(record))["session"] == "s-2"


def test_bind_is_per_thread():
    token = bind_session("main")
    seen = []
    worker = threading.Thread(target=lambda: seen.append(current_session()))
    worker.start()
    worker.join()
    assert seen == [None] and current_session() == "main"
    unbind_session(token)
    bind_session("x")
    unbind_session()
    assert current_session() is None


def test_configure_logging_replaces_handlers_and_quiets_libraries():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("asyncssh").level)
    stream = io.StringIO()
    try:
        configure_logging("5", stream=stream)
        logging.getLogger("qkdn.node").info("node %s serving", "5")
        logging.getLogger("asyncssh").info("channel chatter")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("qkdn.node").exception("failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("asyncssh").setLevel(saved[2])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["node 5 serving", "failed"]
    assert all(line["node"] == "5" for line in lines)
    assert "ValueError: boom" in lines[1]["exc"]
