"""The SSH transports the controller's south-bound runs on, as a pytest parameter list:
tests that touch the transport run over each (libssh only where ``ssh-python`` is
installed: skipped, not failed, elsewhere)."""

from __future__ import annotations

import pytest

from qkdn.netconf_libssh import available

TRANSPORTS = [
    pytest.param("libssh", marks=pytest.mark.skipif(not available(),
                                                    reason="ssh-python not installed")),
    pytest.param("paramiko"),
]
