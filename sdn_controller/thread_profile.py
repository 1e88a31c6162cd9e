"""CPU profile of every thread of the controller process (a diagnostic switch).

``QKDN_CONTROLLER_PROFILE=FILE`` in the environment of ``qkdn controller`` runs each thread
of the process (the main loop, one south-bound session thread per agent, the push pool, the
north-bound server) under its own :class:`cProfile.Profile` timed by ``time.thread_time``
(CPU time, not wall time: a thread waiting in ``select`` costs nothing), and writes their sum
to FILE every 10 s and at SIGTERM; ``python -m pstats FILE`` reads it. cProfile hooks only the
thread that enables it, hence one profiler per thread, started by a ``threading.setprofile``
hook as each thread starts. Off by default: profiling slows Python code by about half.
"""

from __future__ import annotations

import cProfile
import logging
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROFILE_ENV = "QKDN_CONTROLLER_PROFILE"

log = logging.getLogger(__name__)


class _Snapshot:
    """One thread's statistics in the shape :class:`pstats.Stats` loads from a profiler."""

    def __init__(self, stats: dict) -> None:
        self.stats = stats

    def create_stats(self) -> None:
        """Already made (``Profile.snapshot_stats``)."""


class ThreadProfiles:
    """One cProfile per thread started after :meth:`start` (and the caller's own)."""

    def __init__(self, timer: Callable[[], float] = time.thread_time) -> None:
        self._timer = timer
        self._lock = threading.Lock()
        self._profiles: list[cProfile.Profile] = []

    def _enable_here(self) -> None:
        profile = cProfile.Profile(self._timer)
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def _on_thread_start(self, frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)  # this hook runs once per thread: the profiler takes over
        self._enable_here()

    def start(self) -> None:
        """Profile the calling thread and every thread started from now on."""
        threading.setprofile(self._on_thread_start)
        self._enable_here()

    def stats(self) -> pstats.Stats:
        """The sum of every thread's profile so far (profilers stay enabled). Built in
        memory: with dozens of busy threads each GIL hand-over costs milliseconds, so a
        file per thread made a dump take seconds."""
        with self._lock:
            profiles = list(self._profiles)
        snapshots = []
        for profile in profiles:
            profile.snapshot_stats()
            snapshots.append(_Snapshot(profile.stats))  # type: ignore[attr-defined]
        return pstats.Stats(*snapshots)

    def dump(self, path: Path | str) -> None:
        """Write the sum of every thread's profile to ``path`` (pstats format; replaced
        atomically)."""
        partial = f"{path}.partial"
        self.stats().dump_stats(partial)
        os.replace(partial, path)


def profiles_from_env(environ: dict[str, str] | Any = os.environ, *,
                      every_s: float = 10.0) -> tuple[ThreadProfiles, str] | None:
    """Started profiles and their output file when ``QKDN_CONTROLLER_PROFILE`` is set; the
    file is rewritten every ``every_s`` seconds by a daemon thread (a process the supervisor
    kills at the end of a run still leaves its profile up to the last few seconds)."""
    path = environ.get(PROFILE_ENV)
    if not path:
        return None
    return profile_threads(path, every_s=every_s, switch=PROFILE_ENV)


def profile_threads(path: str, *, every_s: float = 10.0,
                    switch: str = PROFILE_ENV) -> tuple[ThreadProfiles, str]:
    """Profile every thread of this process into ``path`` (rewritten every ``every_s``
    seconds by a daemon thread); ``switch`` names the setting that asked for it, in the log."""
    profiles = ThreadProfiles()

    def dump_periodically() -> None:
        while True:
            time.sleep(every_s)
            try:
                profiles.dump(path)
            except Exception:  # a diagnostic must never end the process
                log.warning("writing the profile to %s failed", path, exc_info=True)

    threading.Thread(target=dump_periodically, name="profile-dump", daemon=True).start()
    profiles.start()
    log.warning("profiling every thread of this process into %s (%s)", path, switch)
    return profiles, path
