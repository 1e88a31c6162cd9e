"""``enc_keys_when_admitted``: asks again on 503 only, stops at the deadline, keeps the binding."""

from __future__ import annotations

from dataclasses import dataclass, field

from qkdn.sae_client import enc_keys_when_admitted, sae_client


@dataclass
class Reply:
    status_code: int


@dataclass
class ScriptedSession:
    """Answers with the given statuses in order; records what was asked."""

    statuses: list[int]
    calls: list[tuple[str, str, dict]] = field(default_factory=list)

    def _answer(self, method: str, url: str, request: dict) -> Reply:
        self.calls.append((method, url, request))
        return Reply(self.statuses.pop(0))

    def post(self, url, json, timeout):
        return self._answer("POST", url, json)

    def get(self, url, params, timeout):
        return self._answer("GET", url, params)


def test_asks_again_while_503_then_returns_the_key_answer():
    session = ScriptedSession([503, 503, 200])
    reply = enc_keys_when_admitted(session, "https://km/api/v1/keys", "sae-b", number=3,
                                   retry_s=0)
    assert reply.status_code == 200
    assert session.calls == [("POST", "https://km/api/v1/keys/sae-b/enc_keys", {"number": 3})] * 3


def test_other_errors_are_returned_at_once():
    session = ScriptedSession([503, 401, 200])
    assert enc_keys_when_admitted(session, "u", "sae-b", retry_s=0).status_code == 401
    assert len(session.calls) == 2


def test_gives_up_at_the_deadline_with_the_last_503():
    session = ScriptedSession([503] * 100)
    reply = enc_keys_when_admitted(session, "u", "sae-b", timeout_s=0.05, retry_s=0.01)
    assert reply.status_code == 503
    assert 1 <= len(session.calls) < 100


def test_get_binding_and_size_go_in_the_query():
    session = ScriptedSession([200])
    enc_keys_when_admitted(session, "u", "sae-b", number=2, size=256, method="GET")
    assert session.calls == [("GET", "u/sae-b/enc_keys", {"number": 2, "size": 256})]


def test_sae_client_uses_the_network_ca_and_the_sae_certificate_only():
    endpoints = {"ca_cert": "/ca.pem", "saes": {"sae-a": {"cert": "/a.pem", "key": "/a.key"}}}
    session = sae_client(endpoints, "sae-a")
    assert session.cert == ("/a.pem", "/a.key")
    assert session.verify == "/ca.pem"
    assert session.trust_env is False
