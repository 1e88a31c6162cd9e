"""The controller's per-thread CPU profile (QKDN_CONTROLLER_PROFILE)."""

import pstats
import sys
import threading

from sdn_controller.thread_profile import PROFILE_ENV, ThreadProfiles, profiles_from_env


def _busy_in_thread() -> int:
    return sum(i * i for i in range(20000))


def _names(stats: pstats.Stats) -> set[str]:
    return {name for (_, _, name) in stats.stats}  # type: ignore[attr-defined]


def test_threads_started_after_start_are_profiled_and_summed(tmp_path):
    profiles = ThreadProfiles()
    profiles.start()
    try:
        workers = [threading.Thread(target=_busy_in_thread) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        stats = profiles.stats()
        assert "_busy_in_thread" in _names(stats)
        calls = [v[1] for (_, _, name), v in stats.stats.items()  # type: ignore[attr-defined]
                 if name == "_busy_in_thread"]
        assert calls == [3]   # one call in each of three threads, summed
        out = tmp_path / "controller.prof"
        profiles.dump(out)
        assert "_busy_in_thread" in _names(pstats.Stats(str(out)))
    finally:
        threading.setprofile(None)
        sys.setprofile(None)


def test_off_unless_the_environment_names_a_file():
    assert profiles_from_env({}) is None
    assert profiles_from_env({PROFILE_ENV: ""}) is None
