"""Settings every test run shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cheroot.server import HTTPServer


@pytest.fixture(autouse=True, scope="session")
def quick_cheroot_stop() -> Iterator[None]:
    """cheroot's ``stop()`` waits for its selector loop, which wakes every
    ``expiration_interval`` (0.5 s): half a second per in-process HTTPS server (a KM, the
    orchestrator) at every teardown. 0.05 s here; idle connections still expire after the
    server's ``timeout``, checked ten times as often. Server processes keep the default."""
    default = HTTPServer.expiration_interval
    HTTPServer.expiration_interval = 0.05
    try:
        yield
    finally:
        HTTPServer.expiration_interval = default
