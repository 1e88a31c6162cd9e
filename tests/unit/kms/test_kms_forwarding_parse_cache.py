"""The forwarding table built with a parse cache equals the one built from scratch, and a
commit parses only the qkd_app entries it added or changed."""

from __future__ import annotations

from kms import forwarding
from kms.forwarding import SessionParseCache, build_forwarding_table

NODE = "etsi-qkd-sdn-node:qkd_node"
N_A, N_B, N_C = "aaaa", "bbbb", "cccc"


def app(i: int, priority: int = 0) -> dict:
    return {"app_id": f"11111111-2222-4333-8444-{i:012d}", "server_app_id": f"sae-{i}",
            "client_app_id": [f"sae-{i + 1}"], "app_priority": priority,
            "backing_qkdl_id": [f"99999999-2222-4333-8444-{i:012d}"],
            "qkdn-key-manager:km_session": {"role": "relay", "idle_timeout": 60}}


def link(i: int) -> dict:
    return {"qkdl_id": f"99999999-2222-4333-8444-{i:012d}",
            "qkdl_type": "etsi-qkd-node-types:VIRT", "virt_prev_hop": N_A,
            "virt_next_hop": [N_C], "virt_bandwidth": 100}


def config(apps: list[dict], links: list[dict]) -> dict:
    return {NODE: {"qkdn_id": N_B, "qkd_applications": {"qkd_app": apps},
                   "qkd_links": {"qkd_link": links}}}


def test_cached_table_equals_a_fresh_one_and_parses_only_changes(monkeypatch):
    calls: list[str] = []
    original = forwarding.parse_session
    monkeypatch.setattr(forwarding, "parse_session",
                        lambda a: calls.append(a["app_id"]) or original(a))
    cache = SessionParseCache()
    apps, links = [app(i) for i in range(50)], [link(i) for i in range(50)]
    first = build_forwarding_table(config(apps, links), parsed=cache)
    assert len(calls) == 50
    calls.clear()
    # next commit (copy on write): one entry added, one replaced, one removed
    changed = app(7, priority=5)
    apps2 = [changed if a is apps[7] else a for a in apps if a is not apps[9]] + [app(50)]
    links2 = [lk for lk in links if lk is not links[9]] + [link(50)]
    second = build_forwarding_table(config(apps2, links2), parsed=cache)
    assert sorted(calls) == sorted([changed["app_id"], app(50)["app_id"]])
    fresh = build_forwarding_table(config(apps2, links2))
    assert second == fresh and second != first
    assert second.sessions[changed["app_id"]].priority == 5
    assert app(9)["app_id"] not in second.sessions
