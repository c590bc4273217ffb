"""The glibc tuning that keeps peak RSS flat (its effect is measured by benchmarks/run.py --only 3)."""

from __future__ import annotations

import platform
import subprocess
import sys

from keboola_sync.memory import return_big_buffers_to_the_os


def test_glibc_accepts_the_fixed_mmap_threshold() -> None:
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert return_big_buffers_to_the_os() is expected


def test_freed_big_buffers_leave_the_process() -> None:
    """4 MiB chunks made on one thread and freed on another while small objects survive between them,
    as in the pass. With glibc's defaults this run keeps ~12 MiB in the heap after the last chunk is
    freed; with the fixed threshold nothing stays."""
    script = """
import os, queue, threading
from keboola_sync.memory import return_big_buffers_to_the_os
return_big_buffers_to_the_os()
def rss():
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
big = bytes(8 << 20)
del big  # with glibc's defaults this raises the mmap threshold to 8 MiB
chunks, kept = queue.Queue(maxsize=8), []
def consume():
    while (chunk := chunks.get()) is not None:
        kept.append(chunk[:1024])  # a small survivor between the big frees
worker = threading.Thread(target=consume)
worker.start()
for _ in range(200):
    chunks.put(os.urandom(16) * (1 << 18))
chunks.put(None)
worker.join()
print(rss() - before)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 4 << 20
