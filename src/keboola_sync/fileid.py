"""What identifies a file's content without reading it: a stat fingerprint, and where a path really is.

Why its own room: the ledger, the scheduler, the rescan and the streaming pass all compare fingerprints;
none of them should have to import the others (or the gzip pipeline) to do it. Pure values and two
stat calls, nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fingerprint:
    """Size, mtime and inode (rclone's size+mtime, plus the inode for atomic saves), and the ctime.

    Why the ctime: `cp -p`, `touch -r`, `rsync -t` and backup restores write new bytes and put the old
    mtime back, so size+mtime+inode can stay equal while the content changed. Nobody can set the ctime: any
    write (or chmod) moves it. A ctime-only change costs one re-read and hash, never a needless load (the
    hash decides). 0 means unknown (a ledger row written before the ctime was kept).
    """

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int = 0

    @classmethod
    def of(cls, st: os.stat_result) -> Fingerprint:
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, ctime_ns=st.st_ctime_ns)


def fingerprint(path: Path) -> Fingerprint:
    """Cheap identity of a file's content, from one stat call."""
    return Fingerprint.of(os.stat(path))


def observe(path: Path) -> Fingerprint | None:
    """The fingerprint the scheduler and rescans compare: the file's, or, when the file cannot be
    reached (a dangling link, a link loop, no permission), the directory entry's own, so a broken entry
    is reported once and again only when it changes. None when nothing is there."""
    try:
        return fingerprint(path)
    except OSError:
        try:
            st = os.lstat(path)
        except OSError:
            return None
        return Fingerprint.of(st)


def is_inside(path: Path, root: Path) -> bool:
    """True when `path`, symlinks resolved, stays inside `root` (we never follow links out of it)."""
    try:
        real = os.path.realpath(path, strict=True)
    except OSError:
        return False
    root_real = os.path.realpath(root)
    return real == root_real or real.startswith(root_real + os.sep)
