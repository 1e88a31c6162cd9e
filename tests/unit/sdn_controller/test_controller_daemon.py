import pytest

from qkdn.errors import ConfigError
from sdn_controller.daemon import agent_endpoints, resolve_settings


def test_settings_argument_then_environment_then_default(tmp_path):
    env = {"QKDN_QBER_ALARM": "0.05", "QKDN_POLL_INTERVAL": "2"}
    s = resolve_settings(tmp_path, qber_alarm=0.08, environ=env)
    assert (s.qber_alarm, s.poll_interval_s, s.peer_wait_s) == (0.08, 2.0, 30.0)
    assert resolve_settings(tmp_path, environ=env).qber_alarm == 0.05
    with pytest.raises(ConfigError):
        resolve_settings(tmp_path, environ={"QKDN_TICK": "fast"})


def test_agent_endpoints_from_endpoints_json():
    eps = agent_endpoints({"nodes": {"0": {"qkdn_id": "id-0", "netconf": {
        "host": "127.0.0.1", "port": "830", "username": "admin", "password": "pw"}}}})
    assert eps[0].node_id == "id-0" and eps[0].port == 830 and eps[0].name == "0"
    with pytest.raises(ConfigError):
        agent_endpoints({"nodes": {"0": {"qkdn_id": "id-0"}}})


def test_wait_for_file_and_child_spec(tmp_path):
    import threading

    from sdn_controller.daemon import controller_child_spec, wait_for_file
    target = tmp_path / "endpoints.json"
    threading.Timer(0.2, target.write_text, args=("{}",)).start()
    assert wait_for_file(target, 5, interval_s=0.02) == target
    with pytest.raises(ConfigError):
        wait_for_file(tmp_path / "never.json", 0.1, interval_s=0.02)
    spec = controller_child_spec(tmp_path)
    assert spec.kind == "controller" and spec.argv[-3:] == ("controller", "--state-dir",
                                                             str(tmp_path))
    assert spec.ready_path == tmp_path / "controller" / "ready.json"


def test_snapshot_is_written_every_tick_while_cheap_and_paced_as_it_grows():
    from sdn_controller.daemon import snapshot_delay_for

    assert snapshot_delay_for(0.001, 0.5) == 0.5          # a few sessions: every tick
    assert snapshot_delay_for(0.010, 0.5) == 1.0          # 10 ms: 1 % of a core
    assert snapshot_delay_for(0.5, 0.5) == 2.0            # never staler than 2 s
    assert snapshot_delay_for(0.0, 0.2) == 0.2
