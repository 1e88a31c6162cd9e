"""Merging an explicit value into a leaf that holds its implicit default, in a list entry
that also has a leaf-list (found by the orchestrator: revoking a user with allowed peers
failed with 'Duplicate instance of "revoked"')."""

from __future__ import annotations

import libyang
import pytest
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import NETCONF_BASE_NS, QKDN_ACC_NS

ACCESS = "qkdn-sdn-access:qkd_access"


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


def test_explicit_value_replaces_an_implicit_default(ctx: libyang.Context) -> None:
    store = Datastore(ctx, {"etsi-qkd-sdn-node:qkd_node": {
        "qkdn_id": "11111111-1111-4111-8111-111111111111"}, ACCESS: {
        "sla_profiles": {"sla_profile": [{"name": "gold", "max_bandwidth": 10}]},
        "users": {"user": [{"name": "a", "sla_profile": "gold"},
                           {"name": "b", "sla_profile": "gold", "allowed_peer": ["a"]}]},
    }})
    store.edit_config(etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}"><qkd_access xmlns="{QKDN_ACC_NS}"><users>'
        f'<user><name>b</name><revoked>true</revoked></user></users></qkd_access></config>'))
    users = store.running_json()[ACCESS]["users"]["user"]
    assert users[1] == {"name": "b", "sla_profile": "gold", "allowed_peer": ["a"],
                        "revoked": True}
    assert store.running_json() == store.running_snapshot()
