"""Keep the daemon's memory flat: big buffers go back to the OS as soon as they are freed.

Why: the pass reads 4 MiB chunks on one thread and frees them on others (the gzip workers, the spool
writer). glibc raises its mmap threshold to the size of the largest freed chunk, so after the first
few chunks every 4 MiB buffer comes from a per-thread heap arena instead, and freed arena memory stays
in the process. Measured with `benchmarks/run.py --quick --only 3`: peak RSS 118 MB with glibc's
defaults, 102 MB with a fixed 1 MiB threshold. Fixing the threshold (which also turns off the
adjustment) is what MALLOC_MMAP_THRESHOLD_ does; setting it here means no one has to remember the
environment variable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


def return_big_buffers_to_the_os() -> bool:
    """Ask glibc to mmap every allocation of 1 MiB or more. False where that is not glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    log.debug("glibc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD_BYTES, ok)
    return ok
