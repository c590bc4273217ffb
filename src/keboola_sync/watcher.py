"""File events as hints: a watchdog observer (native or polling) that turns events into paths.

Events are never trusted to be complete (peers.md §2.D, §3 items 1-3, 7): Docker Desktop on macOS drops
close and delete events, renames arrive as delete + modify, inotify queues overflow, propagation can stop.
So this room only says "look at this path soon"; the scheduler's periodic rescan is the guarantee. With
`watch.observer: auto` we start on polling where events are known not to arrive (a Docker Desktop VM
kernel or a file-sharing mount type) and otherwise on native events, switching to polling as soon as a
rescan finds a change that no event announced.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger("keboola_sync.watcher")

# Mount types through which host-side changes reach a Linux VM/container without inotify events, or
# only some of them (peers.md §2.D: osxfs, gRPC FUSE, VirtioFS; network filesystems likewise).
EVENTLESS_FS_TYPES = frozenset(
    {
        "fakeowner",
        "virtiofs",
        "fuse.grpcfuse",
        "grpcfuse",
        "osxfs",
        "fuse.osxfs",
        "9p",
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "fuse.sshfs",
        "vboxsf",
        "prl_fs",
        "fuse.vmhgfs-fuse",
    }
)


def _mount_type(path: Path, mounts_file: Path = Path("/proc/mounts")) -> str | None:
    """The filesystem type of the mount that holds `path` (longest matching mount point)."""
    try:
        lines = mounts_file.read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, parts[2]
    return best_type


def choose_observer(
    setting: str, path: Path, *, kernel_release: str | None = None, mounts_file: Path = Path("/proc/mounts")
) -> tuple[str, str]:
    """Pick `native` or `polling` and say why; the daemon logs the reason at start-up."""
    if setting in ("native", "polling"):
        return setting, f"watch.observer is {setting}"
    release = kernel_release if kernel_release is not None else platform.release()
    if "linuxkit" in release.lower():
        return "polling", (
            f"running on a Docker Desktop VM (kernel {release}): file events from the "
            "host are unreliable there, so the folder is polled"
        )
    fs_type = _mount_type(path, mounts_file)
    if fs_type in EVENTLESS_FS_TYPES:
        return "polling", f"{path} is a {fs_type} mount, which does not deliver file events reliably"
    return "native", "native file events; switching to polling if a rescan finds a change they missed"


class _EventHandler(FileSystemEventHandler):
    """Maps watchdog events to paths relative to the root; directories of the first level are folders.

    The root's own deletion is its own hint: watchdog stops watching a deleted root (inotify drops the
    watch with the directory, polling stops), so a folder created again under the same name (`rm -rf`,
    a restore, a sync tool replacing it) would never send another event unless someone re-arms.
    """

    def __init__(
        self,
        root: Path,
        on_file: Callable[[str], None],
        on_folder: Callable[[str], None],
        on_root_gone: Callable[[], None] | None = None,
    ) -> None:
        self._root = os.path.realpath(root)
        self._on_file, self._on_folder = on_file, on_folder
        self._on_root_gone = on_root_gone

    def _is_root(self, raw: str | bytes) -> bool:
        path = os.fsdecode(raw)
        return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)) == self._root

    def _relative(self, raw: str | bytes) -> str | None:
        path = os.fsdecode(raw)
        real_parent = os.path.realpath(os.path.dirname(path))
        full = os.path.join(real_parent, os.path.basename(path))
        if not full.startswith(self._root + os.sep):
            return None
        return os.path.relpath(full, self._root).replace(os.sep, "/")

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.event_type == "deleted" and self._on_root_gone is not None and self._is_root(event.src_path):
            self._on_root_gone()
            return
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        for raw in paths:
            rel = self._relative(raw)
            if rel is None:
                continue
            depth = rel.count("/")
            if event.is_directory:
                if depth == 0 and rel != ".":
                    self._on_folder(rel)
            elif depth == 1:
                self._on_file(rel)


class _OverflowListener(logging.Handler):
    """watchdog reports a kernel inotify queue overflow only through its log; we turn that into a full
    rescan, because events were lost (peers.md §3 item 7; Syncthing does the same)."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._on_overflow()


class Watcher:
    """Owns the observer; can be switched to polling and restarted (e.g. after the folder came back)."""

    def __init__(
        self,
        root: Path,
        *,
        setting: str,
        polling_interval: float,
        on_file: Callable[[str], None],
        on_folder: Callable[[str], None],
        on_overflow: Callable[[], None],
        on_root_gone: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self._setting = setting
        self._polling_interval = polling_interval
        self._handler = _EventHandler(root, on_file, on_folder, on_root_gone)
        self._overflow = _OverflowListener(on_overflow)
        self._observer: BaseObserver | None = None
        self._lock = threading.Lock()
        self.mode, self.reason = choose_observer(setting, root)

    @property
    def running(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def start(self) -> None:
        """Start watching. A watcher that cannot start is not fatal: rescans keep the folder in sync."""
        with self._lock:
            self._stop_locked()
            logging.getLogger("watchdog.observers.inotify_c").addHandler(self._overflow)
            observer: BaseObserver = (
                PollingObserver(timeout=self._polling_interval) if self.mode == "polling" else Observer()
            )
            try:
                observer.schedule(self._handler, str(self.root), recursive=True)
                observer.start()
            except OSError as exc:
                hint = ""
                if exc.errno == 28:  # ENOSPC: the inotify watch limit
                    hint = (
                        " (inotify watch limit reached: raise fs.inotify.max_user_watches on the host, "
                        "or set watch.observer: polling)"
                    )
                if self.mode == "native":
                    log.warning("native file events unavailable for %s: %s%s; polling instead", self.root, exc, hint)
                    self.mode, self.reason = "polling", f"native events failed to start: {exc}"
                    observer = PollingObserver(timeout=self._polling_interval)
                    try:
                        observer.schedule(self._handler, str(self.root), recursive=True)
                        observer.start()
                    except OSError as exc2:
                        log.error("cannot watch %s: %s; relying on rescans", self.root, exc2)
                        return
                else:
                    log.error("cannot watch %s: %s; relying on rescans", self.root, exc)
                    return
            self._observer = observer

    def reconfigure(self, setting: str, polling_interval: float) -> None:
        """A reloaded watch.observer or watch.polling_interval_seconds: choose again and restart the
        observer (a rescan follows, so nothing changed meanwhile is missed)."""
        self._setting, self._polling_interval = setting, polling_interval
        self.mode, self.reason = choose_observer(setting, self.root)
        log.info("watching with %s observer: %s", self.mode, self.reason)
        self.start()

    def switch_to_polling(self, reason: str) -> None:
        if self.mode == "polling":
            return
        log.warning("switching to polling: %s", reason)
        self.mode, self.reason = "polling", reason
        self.start()

    def _stop_locked(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        logging.getLogger("watchdog.observers.inotify_c").removeHandler(self._overflow)

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()
