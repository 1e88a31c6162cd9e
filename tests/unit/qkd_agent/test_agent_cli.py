"""Pure parts of ``qkdn agent``: start-up config and read-only user parsing."""

from __future__ import annotations

import json

import pytest

from qkd_agent.agent import AgentConfig
from qkd_agent.cli import initial_running_config, parse_read_only_users, standalone_state
from qkdn.errors import ConfigError

NODE = "etsi-qkd-sdn-node:qkd_node"
NODE_ID = "11111111-1111-4111-8111-111111111111"


def test_empty_node_with_given_or_random_id():
    assert initial_running_config(NODE_ID, None) == {NODE: {"qkdn_id": NODE_ID}}
    generated = initial_running_config(None, None)[NODE]["qkdn_id"]
    assert len(generated) == 36 and generated != initial_running_config(None, None)[NODE]["qkdn_id"]


def test_bad_node_id():
    with pytest.raises(ConfigError, match="not a UUID"):
        initial_running_config("node-1", None)


def test_initial_config_file_and_id_override(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({NODE: {"qkdn_id": "x", "qkdn_location_id": "lab"}}))
    assert initial_running_config(NODE_ID, path) == {NODE: {"qkdn_id": NODE_ID,
                                                            "qkdn_location_id": "lab"}}
    path.write_text("{}")
    with pytest.raises(ConfigError, match="qkd_node"):
        initial_running_config(None, path)
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        initial_running_config(None, path)


def test_read_only_users():
    assert parse_read_only_users(["mon:pw", "nms:a:b"]) == {"mon": "pw", "nms": "a:b"}
    for bad in (["mon"], [":pw"], ["mon:"]):
        with pytest.raises(ConfigError):
            parse_read_only_users(bad)


def test_standalone_state_is_an_operating_node():
    assert standalone_state()() == {NODE: {"qkdn_status": "etsi-qkd-node-types:OPERATING"}}


def test_agent_config_users():
    config = AgentConfig(username="admin", password="pw", read_only_users={"mon": "m"})
    assert config.passwords() == {"admin": "pw", "mon": "m"}
    assert AgentConfig(password=None).passwords() == {}
    with pytest.raises(ValueError):
        AgentConfig(username="admin", read_only_users={"admin": "x"})


def test_freeze_startup_objects_moves_them_out_of_the_collector() -> None:
    import gc

    from qkd_agent.cli import freeze_startup_objects

    gc.unfreeze()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 1000  # at least the imported modules' objects
    finally:
        gc.unfreeze()  # the test process keeps collecting as before
