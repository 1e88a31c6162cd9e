"""Wait for files to be replaced in a few folders without polling them (Linux inotify).

A node looks at its neighbours' ``ports.json`` and ``node.json`` (its KM's directory) and at
its links' fault files. Polling them twice a second woke every idle node twice a second;
:class:`FolderEvents` sleeps in ``select`` on an inotify descriptor until a file in a watched
folder is renamed into place, written and closed, or deleted — how the network's state files
change (``write_json_atomic`` renames a temporary file; ``qkdn fault`` replaces the fault
file) — or until a safety timeout, after which the caller looks at its files anyway. Appends
(a node's log, its ``running.journal``) are not watched. A folder that does not exist yet is
watched through its nearest existing parent and added once it appears.

Where inotify is not available (another OS, a C library without it) :meth:`FolderEvents.open`
returns None and the caller keeps polling.

Example::

    events = FolderEvents.open([folder_a, folder_b])
    while not stopped:
        events.wait(5.0)        # True: something changed (or the safety timeout)
        ...look at the files...
    events.close()
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)

_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
#: replaced, written and closed, removed — not appended to (IN_MODIFY)
FILE_MASK = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_MOVED_FROM | _IN_DELETE | _IN_DELETE_SELF


def _libc() -> ctypes.CDLL | None:
    """The C library's symbols as the process already has them: ``CDLL(None)``, no
    ``ctypes.util.find_library`` (which runs ``ldconfig -p`` in a subprocess — in every node
    process at its start, 100 of them at once on a grid)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1, libc.inotify_add_watch  # noqa: B018 - present?
    except (OSError, AttributeError):
        return None
    return libc


class FolderEvents:
    """An inotify descriptor watching folders for replaced files; a context manager."""

    def __init__(self, libc: ctypes.CDLL, fd: int, folders: Iterable[Path]) -> None:
        self._libc = libc
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._lock = threading.Lock()
        #: folders not watched yet (missing): watched through a parent until they appear
        self._wanted = {Path(f) for f in folders}
        self._watched: set[Path] = set()
        self._watch_all()

    @classmethod
    def open(cls, folders: Iterable[Path]) -> FolderEvents | None:
        """Watch ``folders``; None where inotify is not available."""
        libc = _libc()
        if libc is None:
            return None
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            log.debug("inotify_init1 failed: %s", os.strerror(ctypes.get_errno()))
            return None
        return cls(libc, fd, folders)

    def _add(self, folder: Path, mask: int) -> bool:
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), mask)
        if wd < 0:
            err = ctypes.get_errno()
            if err not in (errno.ENOENT, errno.ENOTDIR):
                log.debug("inotify_add_watch %s: %s", folder, os.strerror(err))
            return False
        return True

    def _watch_all(self) -> None:
        """Watch each wanted folder, or its nearest existing parent for its creation."""
        for folder in sorted(self._wanted - self._watched):
            if self._add(folder, FILE_MASK):
                self._watched.add(folder)
                continue
            parent = folder.parent
            while parent != parent.parent and not self._add(parent, FILE_MASK | _IN_CREATE):
                parent = parent.parent

    def wait(self, timeout: float) -> bool:
        """Block until a watched folder's files change (True), :meth:`interrupt` (True) or
        ``timeout`` seconds (False)."""
        ready, _, _ = select.select([self._fd, self._wake_r], [], [], timeout)
        if not ready:
            return False
        self._drain()
        if len(self._watched) < len(self._wanted):
            self._watch_all()
        return True

    def _drain(self) -> None:
        for fd in (self._fd, self._wake_r):
            while True:
                try:
                    if not os.read(fd, 65536):
                        break
                except BlockingIOError:
                    break
                except OSError:
                    break

    def interrupt(self) -> None:
        """Wake a :meth:`wait` now (from another thread)."""
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            for fd in (self._fd, self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fd = self._wake_r = self._wake_w = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
