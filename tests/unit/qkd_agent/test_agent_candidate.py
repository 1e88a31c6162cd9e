"""The candidate datastore over the real libyang Datastore (no sockets)."""

from __future__ import annotations

import pytest
from lxml import etree

from qkd_agent.candidate import CandidateStore, data_to_config
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
NODE_ID = "11111111-1111-4111-8111-111111111111"


@pytest.fixture(scope="module")
def ctx():
    return load_context()


def location(value: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}">'
        f"<qkdn_id>{NODE_ID}</qkdn_id><qkdn_location_id>{value}</qkdn_location_id>"
        "</qkd_node></config>")


def test_unmodified_candidate_mirrors_running(ctx):
    running = Datastore(ctx, {NODE: {"qkdn_id": NODE_ID}})
    candidate = CandidateStore(running, lambda initial: Datastore(ctx, initial))
    assert not candidate.modified and candidate.view() is running
    running.edit_config(location("lab-R"))
    assert "lab-R" in etree.tostring(candidate.view().get_config(None)).decode()


def test_edits_stay_in_the_candidate_until_discarded(ctx):
    running = Datastore(ctx, {NODE: {"qkdn_id": NODE_ID}})
    candidate = CandidateStore(running, lambda initial: Datastore(ctx, initial))
    candidate.for_edit().edit_config(location("lab-C"))
    assert candidate.modified
    assert "lab-C" in etree.tostring(candidate.config()).decode()
    assert "qkdn_location_id" not in str(running.running_json())
    candidate.discard()
    assert not candidate.modified and candidate.view() is running


def test_data_to_config():
    data = etree.fromstring(f'<data xmlns="{NETCONF_BASE_NS}"><a xmlns="urn:a"><b>1</b></a></data>')
    config = data_to_config(data)
    assert config.tag == f"{{{NETCONF_BASE_NS}}}config"
    assert config.findtext("{urn:a}a/{urn:a}b") == "1"
    assert len(data) == 1  # the source is left intact
