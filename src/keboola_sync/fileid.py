"""What identifies a file's content without reading it: a stat fingerprint, and where a path really is.

Why its own room: the ledger, the scheduler, the rescan and the streaming pass all compare fingerprints;
none of them should have to import the others (or the gzip pipeline) to do it. Pure values and two
stat calls, nothing else.
"""

from __future__ import annotations

import os
import stat
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
    is reported once and again only when it changes. None when no file is there: nothing, or a folder
    (a CSV replaced by a folder of its name is gone as a file; the folder is not a file to judge)."""
    try:
        st = os.stat(path)
    except OSError:
        try:
            st = os.lstat(path)
        except OSError:
            return None
    if stat.S_ISDIR(st.st_mode):
        return None
    return Fingerprint.of(st)


def is_folder(entry: os.DirEntry[str]) -> bool:
    """A folder, or a symbolic link to one. False for an entry that cannot be followed (a link loop
    raises ELOOP here): that one is a broken file entry, reported as such by the sync."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def not_a_file(mode: int) -> str | None:
    """What a directory entry is when it is not a regular file ("a named pipe (FIFO)", ...), or None.

    Why it matters: a FIFO named `x.csv` blocks whoever opens it until a writer comes, and a device may
    never end; both stat as 0 bytes, which would read as "the file is empty". They are refused by
    their `stat`, never opened."""
    kinds = (
        (stat.S_ISREG, ""),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    for test, kind in kinds:
        if test(mode):
            return kind or None
    return "a special file"


def is_inside(path: Path, root: Path) -> bool:
    """True when `path`, symlinks resolved, stays inside `root` (we never follow links out of it)."""
    try:
        real = os.path.realpath(path, strict=True)
    except OSError:
        return False
    root_real = os.path.realpath(root)
    return real == root_real or real.startswith(root_real + os.sep)
