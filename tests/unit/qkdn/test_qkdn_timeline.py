"""The per-KM timeline: report rows, session lines, the printed text and the plot."""

from __future__ import annotations

from qkdn.event_log import Event, EventKind
from qkdn.timeline import format_timeline, link_first_keys, report_events, session_lines
from qkdn.timeline_plot import plot_timeline

T0 = 1_000.0
K = EventKind


def _events() -> list[Event]:
    """A relayed exchange 2 -> 0 -> 3 and a direct one 4 -> 5 (times from T0)."""
    rows = [
        (-3.0, "0", K.QKD_KEY_AVAILABLE, None, {"qkdl_id": "l02"}),
        (0.10, "2", K.REQUEST, "S", {"api": "014", "sae": "sae-2"}),
        (0.30, "2", K.REQUEST, "S", {"api": "014", "sae": "sae-2"}),
        (0.40, "0", K.PATH_CONFIGURED, "S", {}),
        (0.41, "0", K.QKD_KEY_AVAILABLE, "S", {}),
        (0.45, "2", K.AUTHENTICATED, "S", {}),
        (0.45, "2", K.PATH_CONFIGURED, "S", {}),
        (0.60, "0", K.RELAY_HOP_RECEIVED, "S", {"role": "relay", "from_node": "2"}),
        (0.62, "3", K.RELAY_HOP_RECEIVED, "S", {"role": "destination"}),
        (0.70, "2", K.KEY_RETURNED, "S", {"api": "014", "sae": "sae-2", "keys": 4}),
        (0.20, "4", K.REQUEST, "D", {"api": "004", "sae": "sae-4"}),
        (0.50, "4", K.KEY_RETURNED, "D", {"api": "004", "sae": "sae-4"}),
        (0.90, "4", K.KEY_RETURNED, "D", {"api": "004", "sae": "sae-4"}),
    ]
    return [Event(T0 + t, n, k, s, d) for t, n, k, s, d in rows]


def test_report_rows_are_relative_and_carry_no_more_than_the_event():
    rows = report_events(_events(), T0)
    assert rows[0] == {"t": -3.0, "node": "0", "event": "qkd_key_available", "session": None,
                       "detail": {"qkdl_id": "l02"}}
    assert rows[1] == {"t": 0.1, "node": "2", "event": "request", "session": "S",
                       "detail": {"api": "014", "sae": "sae-2"}}
    assert set(rows[3]) == {"t", "node", "event", "session"}   # no detail: no field


def test_session_lines_group_per_km_and_session_in_fig4_order():
    lines = session_lines(_events(), T0)
    assert [(ln.node, ln.session) for ln in lines] == [("0", "S"), ("2", "S"), ("3", "S"),
                                                       ("4", "D")]
    relay = lines[0]
    assert relay.api is None and [s.kind for s in relay.steps] == [
        K.PATH_CONFIGURED, K.QKD_KEY_AVAILABLE, K.RELAY_HOP_RECEIVED]
    source = lines[1]
    assert source.api == "014" and source.saes == ("sae-2",)
    assert [s.kind for s in source.steps] == [K.REQUEST, K.AUTHENTICATED, K.PATH_CONFIGURED,
                                              K.KEY_RETURNED]
    request = source.steps[0]
    assert request.count == 2 and abs(request.first - 0.1) < 1e-9 and abs(request.last - 0.3) < 1e-9
    assert abs(lines[3].end - 0.9) < 1e-9 and abs(lines[3].start - 0.2) < 1e-9
    assert link_first_keys(_events(), T0) == {"0": [("l02", -3.0)]}


def test_format_timeline_text():
    text = format_timeline(_events(), T0)
    assert text[0].startswith("timeline")
    at = text.index("KM 0")
    assert text[at + 1] == "  links: first QKD key -3.00 s (1 link(s))"
    assert text[at + 2].startswith("  session S") and "relay" in text[at + 2]
    assert text[at + 3] == ("    path_configured 0.400 · qkd_key_available 0.410 · "
                            "relay_hop_received 0.600")
    assert "    request 0.100 x2 · authenticated 0.450 · path_configured 0.450 · "\
           "key_returned 0.700" in text
    assert [line for line in text if line.startswith("KM")] == ["KM 0", "KM 2", "KM 3", "KM 4"]


def test_plot_writes_a_png(tmp_path):
    path = plot_timeline(_events(), T0, tmp_path / "timeline.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
