from qkdn.supervisor import BACKOFF_MAX_S, restart_delay


def test_restart_backoff_doubles_and_caps():
    assert restart_delay(0) == 0
    assert restart_delay(1) == 0.2
    assert restart_delay(2) == 0.4
    assert restart_delay(3) == 0.8
    assert restart_delay(50) == BACKOFF_MAX_S


def test_controller_spec_matches_the_controller_package(tmp_path):
    from qkdn.state_files import StateDir
    from qkdn.supervisor import controller_spec
    from sdn_controller.daemon import controller_child_spec

    assert controller_spec(StateDir(tmp_path)) == controller_child_spec(tmp_path)


def test_node_spec_forks_run_node_with_the_node_config(tmp_path):
    from qkdn.state_files import StateDir
    from qkdn.supervisor import node_spec, run_node_entry

    state = StateDir(tmp_path)
    spec = node_spec(state, "7")
    assert spec.fork_entry is not None
    assert spec.fork_entry.function is run_node_entry
    assert spec.fork_entry.args == (str(state.node_config("7")),)
    assert spec.fork_entry.argv == spec.argv
    assert spec.argv[-2:] == ("--config", str(state.node_config("7")))


def test_orchestrator_spec_matches_the_orchestrators_own(tmp_path):
    from orchestrator.daemon import orchestrator_child_spec
    from qkdn.state_files import StateDir
    from qkdn.supervisor import orchestrator_spec

    assert orchestrator_spec(StateDir(tmp_path)) == orchestrator_child_spec(tmp_path)
