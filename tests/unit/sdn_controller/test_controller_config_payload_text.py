"""session_config_text: the install payload written as text, equal to the lxml-built one."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdn_controller.config_payloads import session_config_payload, session_config_text, to_xml
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import build_graph, route_session
from sdn_controller.session_config import KmConfig, QoS, build_km_configs, token_bucket_for

N = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(6)]
L = [f"10000000-0000-0000-0000-00000000000{i}" for i in range(6)]


def configs_for(links, src, dst, qos, *, rate=8000, sae=("sae-a", "sae-b")):
    route = route_session(build_graph(links), src, dst, rate)
    return build_km_configs(session_id="5e55105e-0000-4000-8000-000000000001", generation=0,
                            route=route, initiator=(sae[0], src), responder=(sae[1], dst),
                            qos=qos, priority=3, idle_timeout_s=60,
                            bucket=token_bucket_for(rate, burst_s=2.0))


LINE = [LinkMetrics(L[i], N[i], N[i + 1], LinkStatus.ACTIVE, skr=10**5) for i in range(5)]
SPLIT = [LinkMetrics(L[0], N[1], N[0], LinkStatus.ACTIVE, skr=5000),
         LinkMetrics(L[1], N[0], N[2], LinkStatus.ACTIVE, skr=5000),
         LinkMetrics(L[2], N[1], N[3], LinkStatus.ACTIVE, skr=5000),
         LinkMetrics(L[3], N[3], N[2], LinkStatus.ACTIVE, skr=5000)]
QOSES = [QoS(), QoS(max_bps=8000), QoS(max_bps=8000, min_bps=1000, jitter_ms=5, ttl_s=600,
                                        key_chunk_size=32)]


def every_config() -> list[KmConfig]:
    out = []
    for qos in QOSES:
        out += configs_for(LINE, N[0], N[5], qos)            # source, relays, destination
        out += configs_for(LINE[:1], N[0], N[1], qos)        # adjacent: no virtual link
        out += configs_for(SPLIT, N[1], N[2], qos)           # two legs at the ends
    return out + [dataclasses.replace(c, fallback_policy="hybrid") for c in out[:6]]


@pytest.mark.parametrize("with_extensions", [True, False])
@pytest.mark.parametrize("config", every_config(), ids=lambda c: f"{c.role.value}-{c.node_id[-1]}")
def test_text_equals_the_serialised_elements(config, with_extensions):
    assert session_config_text(config, with_extensions=with_extensions) == \
        to_xml(session_config_payload(config, with_extensions=with_extensions))


XML_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff"
                                 + "".join(map(chr, [*range(9), 11, 12, *range(14, 32)]))),
                   min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(sae=st.tuples(XML_TEXT, XML_TEXT), policy=XML_TEXT)
def test_any_xml_text_is_escaped_as_lxml_escapes_it(sae, policy):
    for config in configs_for(LINE[:2], N[0], N[2], QOSES[2], sae=sae):
        config = dataclasses.replace(config, fallback_policy=policy)
        assert session_config_text(config) == to_xml(session_config_payload(config))


@pytest.mark.parametrize("bad", ["a\x00b", "\x1f", "\ud800"])
def test_characters_xml_cannot_carry_are_refused_as_lxml_refuses_them(bad):
    (config, *_) = configs_for(LINE[:1], N[0], N[1], QOSES[1], sae=(bad, "b"))
    with pytest.raises(ValueError):
        session_config_payload(config)
    with pytest.raises(ValueError):
        session_config_text(config)
