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


def test_a_node_needs_the_pki_written_last_by_qkdn_up(tmp_path):
    from qkdn.state_files import StateDir
    from qkdn.supervisor import node_spec

    state = StateDir(tmp_path)
    assert node_spec(state, "a").needs == (state.pki,)


def test_the_supervisor_and_its_elements_cache_bytecode(monkeypatch):
    import os
    import sys

    from qkdn.supervisor import cache_bytecode

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cache_bytecode()
    assert sys.dont_write_bytecode is False
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ     # children inherit the environment


def test_qkdn_up_starts_the_supervisor_without_the_no_bytecode_switch(tmp_path, monkeypatch):
    import subprocess

    from qkdn.bringup import start_supervisor
    from qkdn.state_files import StateDir

    seen = {}

    class FakePopen:
        pid = 4242

        def __init__(self, argv, **kwargs):
            seen.update(kwargs, argv=argv)

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("QKDN_KEEP_ME", "yes")
    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    assert start_supervisor(StateDir(tmp_path)) == 4242
    assert "PYTHONDONTWRITEBYTECODE" not in seen["env"] and seen["env"]["QKDN_KEEP_ME"] == "yes"
    assert seen["argv"][1:3] == ["-m", "qkdn.supervisor"]
