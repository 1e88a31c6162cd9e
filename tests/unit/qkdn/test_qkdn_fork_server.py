"""Fork server: children forked from a preloaded parent run ``main(args)`` of their module."""

import signal
import subprocess
import sys
import time
import types

import pytest

from qkdn import fork_server


@pytest.fixture
def child_module():
    module = types.ModuleType("qkdn_fork_test_child")

    def main(args):
        print("child says", " ".join(args), flush=True)
        if args and args[0] == "sleep":
            time.sleep(30)
        return 3

    module.main = main
    sys.modules[module.__name__] = module
    yield module.__name__
    del sys.modules[module.__name__]


def test_child_runs_main_with_its_output_in_the_log(tmp_path, child_module):
    log = tmp_path / "logs" / "child.log"
    child = fork_server.fork_child([sys.executable, "-m", child_module, "hello", "there"], log)
    assert child.wait(timeout=10) == 3 and child.poll() == 3 and child.returncode == 3
    assert log.read_text() == "child says hello there\n"


def test_terminate_and_timeout(tmp_path, child_module):
    child = fork_server.fork_child([sys.executable, "-m", child_module, "sleep"],
                                   tmp_path / "c.log")
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.1)
    child.terminate()
    assert child.wait(timeout=10) == -signal.SIGTERM


def test_argv_must_name_a_module():
    with pytest.raises(ValueError):
        fork_server.module_argv(["python", "script.py"])
    assert fork_server.module_argv(["py", "-m", "m"]) == ("m", [])


@pytest.mark.parametrize("value,expected", [(None, True), ("1", True), ("0", False),
                                            ("off", False), ("no", False)])
def test_switch(value, expected):
    env = {} if value is None else {fork_server.ENV_SWITCH: value}
    assert fork_server.enabled(env) is expected
