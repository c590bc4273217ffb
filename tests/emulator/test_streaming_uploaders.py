"""Issue 14: the daemon's own Azure and GCS uploaders (keboola_sync.storage.absupload / gcsupload), run
against the emulator's azure and gcp modes with real files: a finished file, a spool still being
written (the upload must start before the writer is done), an empty file, an abandoned upload, and
no credential in the log. Each uploaded file is then imported by the emulator and compared.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator_helpers import finished_job, new_bucket, preview_rows, write

from keboola_sync.config import RetryConfig, UploadConfig
from keboola_sync.storage import Abandoned, RetryPolicy
from keboola_sync.storage.absupload import AbsUploader
from keboola_sync.storage.gcsupload import GcsUploader
from keboola_sync.window import FileWindow
from support.emulator import Emulator, start_emulator

CLOUDS = ("azure", "gcp")
SMALL = UploadConfig(multipart_chunk_mb=0.5, multipart_concurrency=4)  # several blocks / chunks per file
FAST_RETRIES = RetryConfig(max_attempts=8, initial_backoff_seconds=0.05, max_backoff_seconds=0.2)


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, Emulator]]:
    started: dict[str, Emulator] = {}
    yield started
    for emu in started.values():
        emu.close()


@pytest.fixture
def emu(emulators: dict[str, Emulator], mode: str) -> Emulator:
    if mode not in emulators:
        emulators[mode] = start_emulator(extra_args=["--file-storage", mode])
    emulator = emulators[mode]
    emulator.client()  # sets STORAGE_EMULATOR_HOST for the GCS uploader
    return emulator


class Progress:
    """The meter of these uploads: the bytes each progress step reports."""

    def __init__(self, on_step: Any = None) -> None:
        self.steps: list[int] = []
        self._done = 0
        self._on_step = on_step

    def upload_progress(self, label: str, done: int, total: int) -> None:
        self.steps.append(done - self._done)
        self._done = done
        if self._on_step is not None:
            self._on_step()

    def upload_finished(self, label: str, nbytes: int, seconds: float) -> None:
        pass

    def job_finished(self, seconds: float) -> None:
        pass

    def retried(self, reason: str) -> None:
        pass


def _uploader(mode: str, meter: Progress | None = None, retries: RetryConfig | None = None) -> Any:
    """The storage room's uploader for `mode`, as `Storage` builds it (with a retry policy if asked)."""
    stop = threading.Event()
    policy = RetryPolicy(retries, stop) if retries is not None else None
    kind = AbsUploader if mode == "azure" else GcsUploader
    return kind(request_timeout=30, upload=SMALL, progress_seconds=60, abandon=stop, policy=policy, meter=meter)


class GrowingFile:
    """A real file appended to by a writer thread; the GrowingFile the uploaders read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(b"")
        self._fd = os.open(path, os.O_RDONLY)
        self._cond = threading.Condition()
        self._written = 0
        self._done = False
        self.abandon = threading.Event()

    def append(self, data: bytes) -> None:
        with open(self.path, "ab") as out:
            out.write(data)
        with self._cond:
            self._written += len(data)
            self._cond.notify_all()

    def give_up(self) -> None:
        """Shutdown: wake whoever waits for bytes, as the daemon's spool does."""
        with self._cond:
            self.abandon.set()
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, end: int) -> tuple[int, bool]:
        with self._cond:
            self._cond.wait_for(lambda: self._written >= end or self._done or self.abandon.is_set(), timeout=30)
            return self._written, self._done

    def window(self, start: int, length: int) -> FileWindow:
        return FileWindow(self._fd, start, length)

    @property
    def abandoned(self) -> bool:
        return self.abandon.is_set()

    def close(self) -> None:
        os.close(self._fd)


def _csv_gz(rows: int) -> bytes:
    body = "id,name\n" + "".join(f"{i},{hashlib.sha256(str(i).encode()).hexdigest()}\n" for i in range(rows))
    return gzip.compress(body.encode(), compresslevel=1)


def _import(client: Any, file_id: int, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    bucket = new_bucket(client)
    table = client.tables.create(bucket, "t", str(write(tmp_path / "seed.csv", "id,name\n")))
    job = finished_job(client, client.tables.load_raw(table, data_file_id=file_id, is_incremental=False), 60)
    return table, job


@pytest.mark.parametrize("mode", CLOUDS)
def test_upload_file_then_import(emu: Emulator, mode: str, tmp_path: Path) -> None:
    client = emu.client()
    data = _csv_gz(60_000)
    path = tmp_path / "finished.csv.gz"
    path.write_bytes(data)
    assert len(data) > 4 * 512 * 1024  # several blocks / chunks
    prepared = client.files.prepare_upload(path.name, size_bytes=len(data), federation_token=True)
    progress = Progress()
    _uploader(mode, progress).upload_file(prepared, path, len(data), "finished.csv.gz")
    assert sum(progress.steps) == len(data) and len(progress.steps) > 1
    table, job = _import(client, prepared["id"], tmp_path)
    assert job["status"] == "success", job
    assert client.tables.detail(table)["rowsCount"] == 60_000
    downloaded = client.files.download(prepared["id"], str(tmp_path / "dl"))
    assert Path(downloaded).read_bytes() == data


@pytest.mark.parametrize("mode", CLOUDS)
def test_upload_growing_starts_before_the_writer_is_done(emu: Emulator, mode: str, tmp_path: Path) -> None:
    client = emu.client()
    data = _csv_gz(60_000)
    spool = GrowingFile(tmp_path / "spool.csv.gz")
    prepared = client.files.prepare_upload(spool.path.name, federation_token=True)
    first_sent = threading.Event()
    progress = Progress(first_sent.set)

    def writer() -> None:
        half = len(data) // 2
        for start in range(0, half, 100_000):
            spool.append(data[start : min(start + 100_000, half)])
        first_sent.wait(30)  # the rest is written only once a block/chunk has gone up
        spool.append(data[half:])
        spool.finish()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        _uploader(mode, progress).upload_growing(prepared, spool, 0, "spool.csv.gz")
    finally:
        thread.join(30)
        spool.close()
    assert sum(progress.steps) == len(data)
    table, job = _import(client, prepared["id"], tmp_path)
    assert job["status"] == "success", job
    assert client.tables.detail(table)["rowsCount"] == 60_000


@pytest.mark.parametrize("mode", CLOUDS)
def test_an_empty_file_uploads(emu: Emulator, mode: str, tmp_path: Path) -> None:
    client = emu.client()
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    prepared = client.files.prepare_upload(path.name, size_bytes=0, federation_token=True)
    _uploader(mode).upload_file(prepared, path, 0, "empty.csv")
    assert client.files.detail(prepared["id"])["sizeBytes"] == 0


@pytest.mark.parametrize("mode", CLOUDS)
def test_an_abandoned_upload_commits_nothing(emu: Emulator, mode: str, tmp_path: Path) -> None:
    client = emu.client()
    data = _csv_gz(60_000)
    spool = GrowingFile(tmp_path / "abandoned.csv.gz")
    prepared = client.files.prepare_upload(spool.path.name, federation_token=True)

    progress = Progress(spool.give_up)  # shutdown arrives once the first block/chunk is up
    spool.append(data[: len(data) // 2])
    try:
        with pytest.raises(Abandoned):
            _uploader(mode, progress).upload_growing(prepared, spool, 0, "abandoned.csv.gz")
    finally:
        spool.close()
    _, job = _import(client, prepared["id"], tmp_path)
    assert job["status"] == "error" and job["error"]["code"] == "storage.fileNotUploaded", job


@pytest.mark.parametrize("mode", CLOUDS)
def test_no_credential_reaches_the_log(
    emu: Emulator, mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = emu.client()
    path = write(tmp_path / "secret.csv", "id,name\n1,a\n")
    prepared = client.files.prepare_upload(path.name, federation_token=True)
    if mode == "azure":
        secret = prepared["absUploadParams"]["absCredentials"]["SASConnectionString"].split("sig=", 1)[1]
    else:
        secret = prepared["gcsUploadParams"]["access_token"]
    with caplog.at_level(logging.INFO):
        _uploader(mode).upload_file(prepared, path, path.stat().st_size, "secret.csv")
    assert caplog.records is not None
    assert all(secret not in r.getMessage() and "sig=" not in r.getMessage() for r in caplog.records)
    table, job = _import(client, prepared["id"], tmp_path)
    assert job["status"] == "success"
    assert preview_rows(client, table) == ['"id","name"', '"1","a"']


@pytest.mark.parametrize("mode", CLOUDS)
def test_blocks_and_chunks_whose_answer_was_lost_are_resent_or_resumed(mode: str, tmp_path: Path) -> None:
    """About a third of the Put Blocks / resumable chunks are stored but answered 503: the Azure
    uploader re-sends the block (same id, idempotent), the GCS uploader asks the session how much it
    holds and carries on from there, both under the daemon's retry policy. The object arrives whole,
    and the front door counted the bytes."""
    emu = start_emulator(extra_args=["--file-storage", mode, "--cloud-chunk-fail-rate", "0.3", "--seed", "14"])
    try:
        client = emu.client()
        data = _csv_gz(40_000)
        path = tmp_path / "lossy.csv.gz"
        path.write_bytes(data)
        prepared = client.files.prepare_upload(path.name, size_bytes=len(data), federation_token=True)
        _uploader(mode, retries=FAST_RETRIES).upload_file(prepared, path, len(data), "lossy.csv.gz")
        stats = emu.stats()
        assert stats["faults_injected"].get("abs_block" if mode == "azure" else "gcs_chunk", 0) >= 1
        assert stats["s3_put_bytes"] >= len(data)
        downloaded = client.files.download(prepared["id"], str(tmp_path / "dl"))
        assert Path(downloaded).read_bytes() == data
    finally:
        emu.close()
