"""Choosing the observer, and the real watchdog observer turning file events into path hints."""

from __future__ import annotations

import threading

from keboola_sync.watcher import Watcher, choose_observer
from support.emulator import wait_for


def test_docker_desktop_kernel_means_polling(tmp_path):
    mode, why = choose_observer("auto", tmp_path, kernel_release="6.10.14-linuxkit", mounts_file=tmp_path / "none")
    assert mode == "polling" and "Docker Desktop" in why


def test_file_sharing_mount_means_polling(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"overlay / overlay rw 0 0\nfakeowner {tmp_path} fakeowner rw 0 0\n")
    mode, why = choose_observer("auto", tmp_path / "data", kernel_release="6.1.0", mounts_file=mounts)
    assert mode == "polling" and "fakeowner" in why


def test_local_disk_means_native_and_explicit_settings_win(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\n")
    assert choose_observer("auto", tmp_path, kernel_release="6.1.0", mounts_file=mounts)[0] == "native"
    assert choose_observer("polling", tmp_path)[0] == "polling"
    assert choose_observer("native", tmp_path, kernel_release="6.10.14-linuxkit")[0] == "native"


def _collect(tmp_path, setting):
    files: set[str] = set()
    folders: set[str] = set()
    lock = threading.Lock()

    def on_file(p: str) -> None:
        with lock:
            files.add(p)

    def on_folder(p: str) -> None:
        with lock:
            folders.add(p)

    watcher = Watcher(
        tmp_path, setting=setting, polling_interval=0.1, on_file=on_file, on_folder=on_folder, on_overflow=lambda: None
    )
    return watcher, files, folders


def test_native_events_reach_the_handler_including_atomic_saves(tmp_path):
    watcher, files, folders = _collect(tmp_path, "native")
    watcher.start()
    try:
        (tmp_path / "sales").mkdir()
        wait_for(lambda: "sales" in folders, timeout=5)
        (tmp_path / "sales" / "a.csv").write_text("id\n1\n")
        tmp = tmp_path / "sales" / ".a.csv.tmp"
        tmp.write_text("id\n2\n")
        tmp.replace(tmp_path / "sales" / "b.csv")  # an editor's atomic save
        (tmp_path / "sales" / "deep").mkdir()
        (tmp_path / "sales" / "deep" / "c.csv").write_text("id\n")
        wait_for(lambda: {"sales/a.csv", "sales/b.csv"} <= files, timeout=5)
        assert not any(p.startswith("sales/deep/") for p in files)
    finally:
        watcher.stop()


def test_polling_observer_sees_changes(tmp_path):
    (tmp_path / "sales").mkdir()
    watcher, files, _ = _collect(tmp_path, "polling")
    assert watcher.mode == "polling"
    watcher.start()
    try:
        (tmp_path / "sales" / "a.csv").write_text("id\n1\n")
        wait_for(lambda: "sales/a.csv" in files, timeout=5)
    finally:
        watcher.stop()


def _root_gone_counter(tmp_path, setting):
    root = tmp_path / "watched"
    root.mkdir(parents=True)
    gone = threading.Event()
    files: set[str] = set()
    watcher = Watcher(
        root,
        setting=setting,
        polling_interval=0.1,
        on_file=files.add,
        on_folder=lambda p: None,
        on_overflow=lambda: None,
        on_root_gone=gone.set,
    )
    return root, watcher, gone, files


def test_the_watched_folder_deleted_is_reported_and_a_restart_watches_the_new_one(tmp_path):
    """watchdog stops watching a deleted root (issue 12 item 15): the watcher says so, and start() again
    watches the folder created under the same name."""
    import shutil

    for setting in ("native", "polling"):
        root, watcher, gone, files = _root_gone_counter(tmp_path / setting, setting)
        (root / "sales").mkdir()
        watcher.start()
        try:
            shutil.rmtree(root)
            wait_for(gone.is_set, timeout=5, message=f"{setting}: the root's deletion")
            root.mkdir()
            watcher.start()
            (root / "sales").mkdir()
            (root / "sales" / "a.csv").write_text("id\n1\n")
            wait_for(lambda files=files: "sales/a.csv" in files, timeout=5, message=f"{setting}: events again")
        finally:
            watcher.stop()
