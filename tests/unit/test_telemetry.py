"""What the daemon counts and shows about loads in progress (metrics.Metrics as the storage door's meter and
the scheduler's hooks) and which outcomes become notifications (telemetry.Telemetry), without a network."""

from __future__ import annotations

import time
from pathlib import Path

from keboola_sync.config import Config, DaemonConfig, NotifyConfig
from keboola_sync.metrics import Metrics
from keboola_sync.outcome import Outcome, Status
from keboola_sync.storage import Meter
from keboola_sync.telemetry import Telemetry


def test_a_load_goes_reading_uploading_importing_and_is_counted_when_it_ends() -> None:
    metrics = Metrics()
    meter: Meter = metrics  # the storage door's meter
    metrics.load_started("sales/a.csv")
    assert [(j["file"], j["phase"]) for j in metrics.now_loading()] == [("sales/a.csv", "reading")]
    meter.upload_progress("sales/a.csv", 0, 1000)
    meter.upload_progress("sales/a.csv", 400, 1000)
    (job,) = metrics.now_loading()
    assert (job["phase"], job["bytes"], job["total"]) == ("uploading", 400, 1000)
    assert job["rate"] > 0 and job["eta"] is not None and job["eta"] >= 0
    meter.upload_finished("sales/a.csv", 1000, 0.4)
    meter.job_finished(2.0)
    meter.retried("503")
    (job,) = metrics.now_loading()
    assert (job["phase"], job["eta"]) == ("importing", None)
    metrics.load_ended("sales/a.csv", "created")
    assert metrics.now_loading() == []
    snap = metrics.snapshot()
    assert snap.loads == {"created": 1} and snap.uploaded_bytes == 1000 and snap.retries == {"503": 1}
    assert snap.upload_seconds.cumulative()[1] == ("0.5", 1) and snap.job_seconds.total == 2.0


def test_progress_of_an_upload_nobody_loads_is_counted_but_not_shown() -> None:
    """The overlap upload of a load that already ended, or a label that is not a path: never an error."""
    metrics = Metrics()
    metrics.upload_progress("elsewhere.csv", 10, 20)
    metrics.upload_finished("elsewhere.csv", 20, 0.1)
    assert metrics.now_loading() == [] and metrics.snapshot().uploaded_bytes == 20
    metrics.load_ended("gone.csv", None)  # an unexpected error in the sync is counted as "error"
    assert metrics.snapshot().loads == {"error": 1}


class Recorder:
    """Stands in for the Notifier's sending side: what Telemetry asks it to report."""

    def __init__(self) -> None:
        self.files: list[tuple[str, str]] = []
        self.keboola: list[bool] = []

    def file_state(self, rel_path: str, state: str, message: str) -> None:
        self.files.append((rel_path, state))

    def keboola_reachable(self, reachable: bool, detail: str) -> None:
        self.keboola.append(reachable)

    def close(self) -> None:
        pass


def test_outcomes_become_file_states_and_silence_becomes_unreachable(tmp_path: Path) -> None:
    config = Config(daemon=DaemonConfig(keboola_max_silence_seconds=60), notify=NotifyConfig(urls=()))
    telemetry = Telemetry(config)
    recorder = Recorder()
    telemetry.notifier = recorder  # type: ignore[assignment]
    for status in (Status.CREATED, Status.FAILED, Status.WAITING, Status.SKIPPED, Status.CHANGED, Status.GONE):
        telemetry.started("a/x.csv")
        telemetry.ended("a/x.csv", Outcome("a/x.csv", status, "why"))
    telemetry.ended("a/y.csv", None)
    assert recorder.files == [("a/x.csv", s) for s in ("synced", "failed", "failed", "skipped")]
    telemetry.tick(queue_length=3, observer="polling", last_contact=time.time() - 120)
    telemetry.tick(queue_length=0, observer="polling", last_contact=time.time())
    assert recorder.keboola == [False, True]
    snap = telemetry.metrics.snapshot()
    assert snap.queue_length == 0 and snap.observer_mode == "polling" and snap.loads["failed"] == 1
