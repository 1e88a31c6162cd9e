"""Where a node's KM finds a KM that is not its neighbour (qkdn.node_runtime.km_relay_url):
the other node's config, or the port its KM recorded in ``ports.json`` once it listens."""

import json

from qkdn.bringup import NodeProcessConfig
from qkdn.node_runtime import km_relay_url
from qkdn.state_files import StateDir


def _node(network: StateDir, name: str, km_port: int = 0) -> None:
    config = NodeProcessConfig(name, f"id-{name}", network.node_dir(name), network.topology,
                               "127.0.0.1", 830, "qkdn", "pw", "127.0.0.2", km_port)
    network.node_dir(name).mkdir(parents=True, exist_ok=True)
    network.node_config(name).write_text(json.dumps(config.to_json()))


def test_a_fixed_port_comes_from_the_node_config(tmp_path):
    network = StateDir(tmp_path)
    _node(network, "far", km_port=4443)
    assert km_relay_url(network, "far") == "https://127.0.0.2:4443"


def test_an_ephemeral_port_comes_from_ports_json_once_the_km_listens(tmp_path):
    network = StateDir(tmp_path)
    _node(network, "far")
    assert km_relay_url(network, "far") == ""            # not started yet
    (network.node_dir("far") / "ports.json").write_text(json.dumps({"km": 40123}))
    assert km_relay_url(network, "far") == "https://127.0.0.2:40123"
    (network.node_dir("far") / "ports.json").write_text(json.dumps({"km": 40999}))
    assert km_relay_url(network, "far") == "https://127.0.0.2:40999"   # restarted: read anew
