"""Structured logs for the qkdn processes: one JSON object per line with the node and the
session a line belongs to.

``{"ts": "2026-11-27T05:40:01.123Z", "level": "INFO", "logger": "kms.relay", "node": "0",
"session": "3f2c…", "msg": "…"}`` (``session`` only when known; ``exc`` with a traceback).

The node comes from :func:`configure_logging`; the session from a context variable that the
code handling a request binds (:func:`bound_session`, :func:`bind_session`), so log calls
stay plain ``log.info(...)``. Key material never goes into a message in the first place
(house rule); ``tests/integration/test_kms_observability.py`` checks the logs of a run.

>>> import logging
>>> record = logging.LogRecord("kms.relay", logging.INFO, __file__, 1, "stored %d", (3,), None)
>>> with bound_session("s-1"):
...     line = JsonFormatter("0").format(record)
>>> sorted(json.loads(line))
['level', 'logger', 'msg', 'node', 'session', 'ts']
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("qkdn_session",
                                                                      default=None)


def bind_session(session_id: str | None) -> contextvars.Token:
    """Attach ``session_id`` to the log lines of this thread/task from now on."""
    return _session.set(session_id)


def unbind_session(token: contextvars.Token | None = None) -> None:
    """Undo :func:`bind_session` (with its token), or clear the session."""
    if token is not None:
        _session.reset(token)
    else:
        _session.set(None)


def current_session() -> str | None:
    return _session.get()


@contextmanager
def bound_session(session_id: str | None) -> Iterator[None]:
    token = bind_session(session_id)
    try:
        yield
    finally:
        _session.reset(token)


def _utc(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + \
        f".{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, node, session (if any), msg, exc."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {"ts": _utc(record.created), "level": record.levelname,
                                   "logger": record.name}
        node = getattr(record, "node", None) or self.node
        if node is not None:
            body["node"] = node
        session = getattr(record, "session", None) or _session.get()
        if session is not None:
            body["session"] = session
        body["msg"] = record.getMessage()
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def configure_logging(node: str | None, *, level: int | str = logging.INFO,
                      stream: IO[str] | None = None, quiet: tuple[str, ...] = (
                          "asyncssh", "ncclient", "cheroot", "urllib3")) -> logging.Handler:
    """Send this process's logs as JSON lines to ``stream`` (stderr: the supervisor writes
    it to the element's log file), replacing the root logger's handlers. Chatty libraries in
    ``quiet`` log WARNING and above only. Returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(node))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
