"""OS file locks: one process per ledger, and a live process's spools kept apart from a dead one's.

Why `fcntl.flock` on a file of our own: the kernel drops the lock the moment the process dies, `kill -9`
included, so a lock can never be left stale and no pid file has to be guessed about. The lock file holds
who took it (pid, command, host, time) only to say so in the refusal; the lock itself is the flock, never
the file's content. The file is never deleted: unlinking a lock file while another process opens it lets two
processes lock two different inodes of the "same" name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as written by it; every field may be missing (an older or a starting process)."""

    pid: int | None
    command: str | None
    host: str | None
    since: float | None

    def describe(self) -> str:
        """E.g. `pid 4242, "keboola-sync run", since 2026-11-30 00:12:03` (what is known of it)."""
        parts = [f"pid {self.pid}" if self.pid else "pid unknown"]
        if self.command:
            parts.append(f'"{self.command}"')
        if self.host and self.host != socket.gethostname():
            parts.append(f"on host {self.host}")
        if self.since:
            parts.append("since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since)))
        return ", ".join(parts)


def this_command() -> str:
    """`keboola-sync run` or `keboola-sync sync --once`: what the holder was started as."""
    args = [a for a in sys.argv[1:] if a in ("run", "sync", "--once")]
    return " ".join(["keboola-sync", *args])


# flock errors that mean "this filesystem cannot lock" (some network and FUSE mounts), not "held".
UNSUPPORTED = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS})


class FileLock:
    """An exclusive flock held for the life of the process (or until `release`)."""

    def __init__(self, path: Path, fd: int, unsupported: OSError | None = None) -> None:
        self.path = path
        self._fd: int | None = fd
        # Set when the filesystem cannot lock at all: the file is open but nothing is locked.
        self.unsupported = unsupported

    @classmethod
    def try_acquire(cls, path: Path) -> FileLock | None:
        """The lock, or None when another process holds it. Raises OSError when the file cannot be made.
        On a filesystem without locks it returns an unlocked FileLock whose `unsupported` says why."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            if exc.errno in UNSUPPORTED:
                return cls(path, fd, unsupported=exc)
            os.close(fd)
            raise
        return cls(path, fd)

    def write_holder(self) -> None:
        """Say who we are, for the refusal another process prints (best effort: the flock is the lock)."""
        if self._fd is None:
            return
        data = {"pid": os.getpid(), "command": this_command(), "host": socket.gethostname(), "since": time.time()}
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(data).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """An exclusive flock for a short critical section, waiting for another process to leave it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in UNSUPPORTED:
                raise  # a filesystem without locks runs the section unguarded, as before there were locks
        yield
    finally:
        os.close(fd)


def read_holder(path: Path) -> Holder:
    """What the holder wrote into the lock file; empty fields when it has not written yet."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid, command, host, since = (data.get(k) for k in ("pid", "command", "host", "since"))
    return Holder(
        pid=pid if isinstance(pid, int) else None,
        command=command if isinstance(command, str) else None,
        host=host if isinstance(host, str) else None,
        since=float(since) if isinstance(since, (int, float)) else None,
    )
