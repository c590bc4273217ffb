"""`watch.observer: auto` switches from native events to polling when a rescan finds a change that no
event announced (what Docker Desktop for Mac does to inotify, peers.md §2.D). Real watcher, real
scheduler, real ledger and storage against the emulator, in one process so the watcher can be inspected."""

from __future__ import annotations

import threading
import time

import yaml

from keboola_sync.config import load_config
from keboola_sync.daemon import Daemon
from keboola_sync.preflight import connect
from keboola_sync.scheduler import Scheduler
from keboola_sync.state import Ledger
from keboola_sync.sync import SyncService
from keboola_sync.watcher import Watcher
from support.emulator import wait_for


def in_process(tmp_path, emulator, folder: str):
    """Config, ledger, scheduler and rescan of a daemon, without its loop, so the test drives the rescans."""
    watch = tmp_path / "watched"
    (watch / folder).mkdir(parents=True)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "keboola": {"url": emulator.api_url},
                "watch": {"path": str(watch), "stable_seconds": 0.2, "observer": "auto"},
                "state": {"path": str(tmp_path / "state.db")},
                "upload": {"spool_dir": str(tmp_path / "spool")},
                "daemon": {"health_file": str(tmp_path / "health.json")},
                "logging": {"file": str(tmp_path / "log.txt")},
            }
        )
    )
    config = load_config(config_file, None, environ=emulator.env(), config_path_explicit=True)
    storage, _ = connect(config)
    ledger = Ledger(config.state.path)
    service = SyncService(config, storage, ledger)
    scheduler = Scheduler(service, watch, stable_seconds=config.watch.stable_seconds, workers=1, stop=threading.Event())

    def full_scan(watcher: Watcher) -> None:
        daemon.rescans.rescan(service, scheduler, watcher)

    daemon = Daemon(config)
    return config, ledger, scheduler, full_scan


def wait_settled(config, path) -> None:
    settled_at = path.stat().st_mtime + 2 * config.watch.stable_seconds + 1
    wait_for(lambda: time.time() > settled_at, timeout=5, message="the change to settle")


def test_a_change_no_event_announced_switches_to_polling(tmp_path, emulator):
    config, ledger, scheduler, full_scan = in_process(tmp_path, emulator, "fallback")
    watch = config.watch.path
    watcher = Watcher(
        watch,
        setting="auto",
        polling_interval=0.1,
        on_file=lambda p: scheduler.notify(p, from_event=True),
        on_folder=scheduler.notify_folder,
        on_overflow=lambda: None,
    )
    try:
        assert watcher.mode == "native"
        watcher.start()
        full_scan(watcher)
        watcher.stop()  # from here on events are lost, as they are through Docker Desktop's file sharing
        path = watch / "fallback" / "a.csv"
        path.write_text("id\n1\n")
        wait_settled(config, path)
        full_scan(watcher)
        assert watcher.mode == "polling"
        assert "no file event announced" in watcher.reason and "fallback/a.csv" in watcher.reason
        assert watcher.running
    finally:
        watcher.stop()
        ledger.close()


def test_a_change_an_event_announced_keeps_native_events(tmp_path, emulator):
    config, ledger, scheduler, full_scan = in_process(tmp_path, emulator, "native")
    watch = config.watch.path
    seen: list[str] = []

    def on_file(p: str) -> None:
        seen.append(p)
        scheduler.notify(p, from_event=True)

    watcher = Watcher(
        watch,
        setting="auto",
        polling_interval=0.1,
        on_file=on_file,
        on_folder=scheduler.notify_folder,
        on_overflow=lambda: None,
    )
    try:
        watcher.start()
        full_scan(watcher)
        path = watch / "native" / "a.csv"
        path.write_text("id\n1\n")
        wait_for(lambda: "native/a.csv" in seen, timeout=5)
        wait_settled(config, path)
        full_scan(watcher)
        assert watcher.mode == "native"
    finally:
        watcher.stop()
        ledger.close()
