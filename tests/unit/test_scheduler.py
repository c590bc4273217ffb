"""The scheduler with a fake clock and scripted fingerprints: no emulator, no threads, no sleeps.

The scheduler's own code runs unchanged; only time, the stat and the sync service are scripted, and
jobs run on the test's thread (`run_next`, what a worker does) so every interleaving is chosen here (only the
test of a reloaded worker count runs real worker threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from keboola_sync.fileid import Fingerprint
from keboola_sync.layout import Ignored, Layout, Rejected, Target
from keboola_sync.scheduler import Scheduler
from keboola_sync.sync import Outcome

ROOT = Path("/watched")
STABLE = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Disk:
    """Scripted fingerprints: what a stat of each path returns right now. A write stamps the fake clock's
    time as the mtime (the scheduler is given the same clock as its wall clock)."""

    def __init__(self, clock: Clock) -> None:
        self.files: dict[Path, Fingerprint] = {}
        self._clock = clock

    def write(self, rel_path: str, version: int, *, mtime: float | None = None) -> None:
        stamp = self._clock.now if mtime is None else mtime
        self.files[ROOT / rel_path] = Fingerprint(size=version, mtime_ns=int(stamp * 1e9), inode=1)

    def delete(self, rel_path: str) -> None:
        self.files.pop(ROOT / rel_path, None)

    def stat(self, path: Path) -> Fingerprint | None:
        return self.files.get(path)


class Service:
    """Records the loads; `during_load` lets a test change the folder while a load runs."""

    def __init__(self) -> None:
        self.layout = Layout()
        self.loads: list[str] = []
        self.buckets: list[str] = []
        self.during_load: Callable[[str], None] = lambda rel_path: None
        self.status = "loaded"

    def target_for(self, rel_path: str) -> Target | Ignored | Rejected:
        return self.layout.classify(rel_path)

    def sync(self, rel_path: str) -> Outcome:
        self.loads.append(rel_path)
        self.during_load(rel_path)
        return Outcome(rel_path, self.status)

    def bucket_known(self, folder: str) -> bool:
        return folder in self.buckets

    def ensure_folder(self, folder: str) -> str | None:
        self.buckets.append(folder)
        return f"in.c-{folder}"

    def tables_dropped_remotely(self) -> list[str]:
        return []


def make() -> tuple[Scheduler, Service, Clock, Disk]:
    service, clock = Service(), Clock()
    disk = Disk(clock)
    scheduler = Scheduler(
        service,
        ROOT,
        stable_seconds=STABLE,
        workers=1,
        stop=threading.Event(),
        clock=clock,
        stat=disk.stat,
        wall=clock,
    )
    return scheduler, service, clock, disk


def run_all(scheduler: Scheduler) -> None:
    while scheduler.run_next():
        pass


def test_a_file_is_loaded_only_after_the_stable_window() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1)
    scheduler.notify("sales/a.csv", from_event=True)
    scheduler.tick()  # first stat: the window starts now
    clock.advance(STABLE - 0.1)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == []
    clock.advance(0.1)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]
    assert scheduler.idle()
    assert scheduler.counters.loaded == 1


def test_a_change_inside_the_window_starts_it_again() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1)
    scheduler.notify("sales/a.csv")
    scheduler.tick()
    clock.advance(STABLE - 0.5)
    disk.write("sales/a.csv", 2)
    scheduler.tick()  # new fingerprint: a new window
    clock.advance(1.0)
    scheduler.tick()
    assert not scheduler.run_next()
    clock.advance(STABLE)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_a_file_settled_at_start_up_waits_for_one_identical_stat_only() -> None:
    scheduler, service, _, disk = make()
    disk.write("sales/a.csv", 1)
    scheduler.notify("sales/a.csv", settled=disk.files[ROOT / "sales/a.csv"])
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_a_file_renamed_in_with_an_old_mtime_goes_at_the_next_identical_stat() -> None:
    """Issue 18.1: a finished file moved into the folder has been quiet for longer than the window."""
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1, mtime=clock.now - 60)
    scheduler.notify("sales/a.csv", from_event=True)
    scheduler.tick()  # first stat
    run_all(scheduler)
    assert service.loads == []  # one more identical stat is still required
    clock.advance(0.25)  # one daemon tick
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_the_window_runs_from_the_last_write_not_from_the_first_look() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1, mtime=clock.now - 0.5)  # saved half a second before its event was handled
    scheduler.notify("sales/a.csv", from_event=True)
    scheduler.tick()
    clock.advance(STABLE - 0.6)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == []
    clock.advance(0.1)  # STABLE after the write
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_a_file_written_again_starts_its_window_again() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1, mtime=clock.now - 60)
    scheduler.notify("sales/a.csv", from_event=True)
    scheduler.tick()
    disk.write("sales/a.csv", 2)  # appended to right after the rename: a fresh mtime
    clock.advance(0.25)
    scheduler.tick()
    clock.advance(STABLE - 0.5)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == []
    clock.advance(0.5)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_an_mtime_in_the_future_gives_no_credit() -> None:
    """Another machine's clock ahead of ours (a network mount): the full window, from our first look."""
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1, mtime=clock.now + 30)
    scheduler.notify("sales/a.csv", from_event=True)
    scheduler.tick()
    clock.advance(STABLE - 0.1)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == []
    clock.advance(0.1)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_the_loop_sleeps_until_the_earliest_window_ends() -> None:
    scheduler, service, clock, disk = make()
    assert scheduler.next_wait(0.5) == 0.5  # nothing waiting: the ordinary tick
    disk.write("sales/a.csv", 1, mtime=clock.now - 1.8)
    scheduler.notify("sales/a.csv", from_event=True)
    assert scheduler.next_wait(0.5) == 0.5  # not looked at yet: the next tick stats it
    scheduler.tick()
    assert abs(scheduler.next_wait(0.5) - 0.2) < 1e-9  # quiet for 1.8 s of its 2 s window
    clock.advance(0.2)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_a_window_already_over_does_not_make_the_loop_spin() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1)
    scheduler.notify("sales/a.csv", from_event=True)
    scheduler.tick()
    clock.advance(STABLE)
    scheduler.tick()  # dispatched, not yet run: its table is busy
    disk.write("sales/a.csv", 2)
    scheduler.notify("sales/a.csv")
    scheduler.tick()
    clock.advance(STABLE)
    scheduler.tick()  # stable again, but waits for the load of its table
    assert scheduler.next_wait(0.25) == 0.25
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_a_file_deleted_before_it_settles_is_dropped_without_a_load() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1)
    scheduler.notify("sales/a.csv")
    scheduler.tick()
    disk.delete("sales/a.csv")
    clock.advance(STABLE)
    scheduler.tick()  # fingerprint gone: a change
    clock.advance(STABLE)
    scheduler.tick()  # still gone: dropped
    run_all(scheduler)
    assert service.loads == []
    assert scheduler.idle()


def test_one_load_per_table_at_a_time() -> None:
    """Two files that map to one table ("a b.csv" and "a_b.csv") never load at once."""
    scheduler, service, clock, disk = make()
    running: list[str] = []
    overlaps: list[tuple[str, str]] = []

    def during(rel_path: str) -> None:
        # While this load runs, the other file settles, the loop ticks on and a second worker takes
        # whatever was queued: if the other file were dispatched now, it would run inside this load.
        overlaps.extend((rel_path, other) for other in running)  # same table: nothing may be running
        running.append(rel_path)
        clock.advance(STABLE)
        scheduler.tick()
        clock.advance(STABLE)
        scheduler.tick()
        scheduler.run_next()
        running.remove(rel_path)

    service.during_load = during
    for name in ("sales/a b.csv", "sales/a_b.csv"):
        disk.write(name, 1)
        scheduler.notify(name)
    scheduler.tick()
    clock.advance(STABLE)
    scheduler.tick()
    assert scheduler.run_next()
    assert len(service.loads) == 1
    assert scheduler.pending_count == 1  # the other file waits for the table's slot
    run_all(scheduler)
    scheduler.tick()
    run_all(scheduler)
    assert sorted(service.loads) == ["sales/a b.csv", "sales/a_b.csv"]
    assert overlaps == []


def test_different_tables_are_dispatched_together() -> None:
    scheduler, service, clock, disk = make()
    for name in ("sales/a.csv", "sales/b.csv", "costs/a.csv"):
        disk.write(name, 1)
        scheduler.notify(name)
    scheduler.tick()
    clock.advance(STABLE)
    scheduler.tick()
    assert scheduler.pending_count == 3
    run_all(scheduler)
    assert sorted(service.loads) == ["costs/a.csv", "sales/a.csv", "sales/b.csv"]


def test_a_thousand_changes_during_a_load_give_at_most_two_loads() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 0)

    def during(rel_path: str) -> None:
        if len(service.loads) > 1:
            return
        for version in range(1, 1001):  # the file keeps changing while the first load runs
            disk.write("sales/a.csv", version)
            scheduler.notify("sales/a.csv", from_event=True)
            clock.advance(STABLE / 3)
            scheduler.tick()

    service.during_load = during
    scheduler.notify("sales/a.csv", from_event=True)
    scheduler.tick()
    for _ in range(20):  # the loop goes on until everything is loaded
        clock.advance(STABLE)
        scheduler.tick()
        run_all(scheduler)
    assert service.loads == ["sales/a.csv", "sales/a.csv"]
    assert scheduler.idle()


def test_a_file_that_changed_while_read_is_scheduled_again() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1)
    service.status = "changed"
    scheduler.notify("sales/a.csv")
    scheduler.tick()
    clock.advance(STABLE)
    scheduler.tick()
    run_all(scheduler)
    service.status = "loaded"
    assert not scheduler.idle()  # hinted again by the "changed" outcome
    scheduler.tick()
    clock.advance(STABLE)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv", "sales/a.csv"]
    assert scheduler.counters.loaded == 1


def test_nothing_is_dispatched_while_paused() -> None:
    scheduler, service, clock, disk = make()
    disk.write("sales/a.csv", 1)
    scheduler.notify("sales/a.csv")
    scheduler.paused = "the watched folder /watched is missing (unmounted volume?)"
    scheduler.tick()
    clock.advance(STABLE * 2)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == []
    scheduler.paused = None
    scheduler.tick()
    clock.advance(STABLE)
    scheduler.tick()
    run_all(scheduler)
    assert service.loads == ["sales/a.csv"]


def test_a_folder_gets_one_bucket_job_however_often_it_is_announced() -> None:
    scheduler, service, _, _ = make()
    for _ in range(5):
        scheduler.notify_folder("sales")
    assert scheduler.take_new_folders() == ["sales"]
    assert scheduler.take_new_folders() == []
    scheduler.queue_folder("sales")
    scheduler.queue_folder("sales")
    run_all(scheduler)
    assert service.buckets == ["sales"]
    scheduler.queue_folder("sales")  # known now: no Keboola call
    assert not scheduler.run_next()


def test_nothing_starts_after_stop() -> None:
    service, clock = Service(), Clock()
    disk = Disk(clock)
    stop = threading.Event()
    scheduler = Scheduler(
        service, ROOT, stable_seconds=STABLE, workers=1, stop=stop, clock=clock, stat=disk.stat, wall=clock
    )
    disk.write("sales/a.csv", 1)
    scheduler.notify("sales/a.csv")
    scheduler.tick()
    clock.advance(STABLE)
    scheduler.tick()
    stop.set()
    run_all(scheduler)
    assert service.loads == []
    assert scheduler.wait_idle(0)


def test_events_seen_are_handed_over_once() -> None:
    scheduler, _, _, disk = make()
    disk.write("sales/a.csv", 1)
    scheduler.notify("sales/a.csv", from_event=True)
    scheduler.notify("sales/b.csv")
    assert scheduler.take_events_seen() == {"sales/a.csv"}
    assert scheduler.take_events_seen() == set()
    assert scheduler.known() == {"sales/a.csv", "sales/b.csv"}


def test_a_reloaded_worker_count_starts_workers_or_lets_them_leave() -> None:
    """The one test here with real worker threads: upload.concurrency changed while running."""
    from support.emulator import wait_for

    def load_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("load-"))

    scheduler, service, _clock, disk = make()
    before = load_threads()
    scheduler.start_workers()
    wait_for(lambda: load_threads() == before + 1, message="one worker")
    scheduler.set_workers(3)
    wait_for(lambda: load_threads() == before + 3, message="three workers")
    scheduler.set_workers(1)
    wait_for(lambda: load_threads() == before + 1, message="two workers left")

    disk.write("sales/a.csv", 1)  # the worker that stayed still loads
    scheduler.notify("sales/a.csv", settled=disk.files[ROOT / "sales/a.csv"])
    scheduler.tick()
    wait_for(lambda: service.loads == ["sales/a.csv"], message="a load on the remaining worker")
    assert scheduler.run_next() is False  # the retirements were taken by workers, not left queued
    scheduler.set_workers(0)
    wait_for(lambda: load_threads() == before, message="the last worker left")
