"""The sessions list the daemon snapshots while request threads admit sessions: a session
admitted during the listing must not end the controller ("dictionary changed size")."""

import itertools

from sdn_controller import admission_control
from sdn_controller.admission_control import AdmissionControl, ConfigRequest
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import GraphRouter
from sdn_controller.session_config import QoS
from sdn_controller.user_db import SlaProfile, UserDb


def test_sessions_listing_survives_an_admission_during_it(monkeypatch):
    db = UserDb.open()
    db.add_sla(SlaProfile("std", max_bps=50_000, min_bps=1_000, max_priority=5,
                          max_sessions=10, idle_timeout_s=60))
    for i in range(4):
        db.add_user(f"u{i}", "std")
        db.add_application(f"sae-{i}", f"u{i}", f"n{i}")
    links = [LinkMetrics(f"n0-n{i}", "n0", f"n{i}", LinkStatus.ACTIVE, skr=100_000)
             for i in range(1, 4)]
    ids = (f"sess-{i}" for i in itertools.count())
    ac = AdmissionControl(db, GraphRouter(lambda: links), clock=lambda: 1000.0,
                          new_session_id=lambda: next(ids))
    qos = QoS(max_bps=10_000, min_bps=1_000, priority=3)
    ac.request_config(ConfigRequest("n1", "sae-1", "sae-2", "u1", "std", qos, None))

    view = admission_control._view
    admitted = []

    def view_while_another_thread_admits(session):
        if not admitted:   # what a request thread does between two steps of the listing
            admitted.append(ac.request_config(
                ConfigRequest("n3", "sae-3", "sae-1", "u3", "std", qos, None)))
        return view(session)

    monkeypatch.setattr(admission_control, "_view", view_while_another_thread_admits)
    listed = ac.sessions()
    assert len(listed) == 1 and admitted
    assert len(ac.sessions()) == 2
    db.close()
