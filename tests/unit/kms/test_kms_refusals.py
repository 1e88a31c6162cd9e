"""Refusal entries of the running configuration (qkdn-key-manager:km_refusals), read by the KM."""

from kms.refusals import CounterProposal, refusals_from_running

NODE = "etsi-qkd-sdn-node:qkd_node"
RID = "0E0E0E0E-0000-4000-8000-000000000001"


def test_refusals_are_read_by_request_id_with_their_counter_proposal():
    running = {NODE: {"qkdn_id": "n", "qkdn-key-manager:km_refusals": {"refusal": [
        {"request_id": RID, "sae_id": "sae-a", "peer_sae_id": "sae-b", "etsi004_status": 7,
         "access_denied": False, "reason": "qos-above-sla", "detail": "max_bps 5000 > 1000",
         "counter_proposal": {"max_bps": 1000, "min_bps": 500, "priority": 3}}]}}}
    (refusal,) = refusals_from_running(running).values()
    assert refusal.request_id == RID.lower() and refusal.etsi004_status == 7
    assert refusal.counter_proposal == CounterProposal(1000, 500, 3, None)
    assert refusal.message == "refused by the controller: qos-above-sla (max_bps 5000 > 1000)"


def test_access_refusal_and_no_refusals():
    running = {NODE: {"qkdn-key-manager:km_refusals": {"refusal": [
        {"request_id": RID, "sae_id": "sae-x", "etsi004_status": 4, "access_denied": True,
         "reason": "unknown-application"}]}}}
    (refusal,) = refusals_from_running(running).values()
    assert refusal.access_denied and refusal.counter_proposal is None
    assert refusal.message == "refused by the controller: unknown-application"
    assert refusals_from_running({NODE: {"qkdn_id": "n"}}) == {}
    assert refusals_from_running({}) == {}
