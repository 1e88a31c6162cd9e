"""An application's (SAE's) ETSI GS QKD 014 client of a running network, as ``qkdn up`` writes
it in ``endpoints.json``: the SAE's client certificate, the network CA, nothing else.

While the controller admits a new session (routing, configuration of every KM on the path) or
a KM relays key, ``enc_keys`` answers 503; an application asks again. ``enc_keys_when_admitted``
is that loop, shared by the paper scenario, the tests and the benchmarks.
"""

from __future__ import annotations

import time
from typing import Any

import requests

#: pause between two ``enc_keys`` while the KM answers 503
RETRY_S = 0.2


def sae_client(endpoints: dict[str, Any], sae_id: str) -> requests.Session:
    """A keep-alive HTTPS session with ``sae_id``'s certificate, trusting the network CA only."""
    sae = endpoints["saes"][sae_id]
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not replace the network's CA
    session.cert = (sae["cert"], sae["key"])
    session.verify = endpoints["ca_cert"]
    return session


def enc_keys_when_admitted(session: requests.Session, etsi014_url: str, slave_sae_id: str, *,
                           number: int = 1, size: int | None = None, timeout_s: float = 30.0,
                           retry_s: float = RETRY_S, method: str = "POST") -> requests.Response:
    """``enc_keys`` for ``slave_sae_id``, asked again while the KM answers 503, until it answers
    anything else or ``timeout_s`` has passed; returns the last answer (the caller checks it).

    ``method`` is the 014 binding used: ``"POST"`` (JSON body) or ``"GET"`` (query string)."""
    url = f"{etsi014_url}/{slave_sae_id}/enc_keys"
    request = {"number": number} if size is None else {"number": number, "size": size}
    deadline = time.monotonic() + timeout_s
    while True:
        if method == "GET":
            reply = session.get(url, params=request, timeout=timeout_s)
        else:
            reply = session.post(url, json=request, timeout=timeout_s)
        if reply.status_code != 503 or time.monotonic() + retry_s > deadline:
            return reply
        time.sleep(retry_s)
