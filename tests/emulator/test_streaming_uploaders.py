"""Issue 14: the daemon's own Azure and GCS uploaders (keboola_sync.storage.absupload / gcsupload), run
against the emulator's azure and gcp modes with real files: a finished file, a spool still being
written (the upload must start before the writer is done), an empty file, an abandoned upload, and
no credential in the log. Each uploaded file is then imported by the emulator and compared.

Then every failure path the S3 uploader is proven on, through the emulator's scripted cloud fault
(`cloud_fault`, docs/emulator.md): a block / chunk that fails is sent again alone, the lost answer of
Azure's Put Block List (committed twice, harmless) and of GCS's last chunk (the status query says the
object is complete), a GCS session that is gone (a new session, the whole file again), a stalled answer
(the request timeout, then a retry), an expired SAS / token (a terminal error without the credential),
and one attempt per request under the client libraries (the policy is the only retry loop).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from emulator_helpers import finished_job, new_bucket, preview_rows, write

from keboola_sync.config import RetryConfig, UploadConfig
from keboola_sync.storage import Abandoned, NoMeter, RetryPolicy, StorageTerminal
from keboola_sync.storage.absupload import AbsUploader
from keboola_sync.storage.errors import classify
from keboola_sync.storage.gcsupload import GcsUploader
from keboola_sync.window import FileWindow
from support.emulator import Emulator, start_emulator

CLOUDS = ("azure", "gcp")
SMALL = UploadConfig(multipart_chunk_mb=0.5, multipart_concurrency=4)  # several blocks / chunks per file
FAST_RETRIES = RetryConfig(max_attempts=8, initial_backoff_seconds=0.05, max_backoff_seconds=0.2)


@pytest.fixture
def file_storage(mode: str) -> str:
    """Each test's `mode` picks the session emulator of that file storage (support/emulator.py), its
    faults reset after every test."""
    return mode


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.client()  # sets STORAGE_EMULATOR_HOST for the GCS uploader
    return emulator


class Progress(NoMeter):
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


def _uploader(
    mode: str,
    meter: Progress | None = None,
    retries: RetryConfig | None = None,
    *,
    request_timeout: float = 30,
    progress_seconds: float = 60,
) -> Any:
    """The storage room's uploader for `mode`, as `Storage` builds it (with a retry policy if asked)."""
    stop = threading.Event()
    policy = RetryPolicy(retries, stop) if retries is not None else None
    kind = AbsUploader if mode == "azure" else GcsUploader
    return kind(
        request_timeout=request_timeout,
        upload=SMALL,
        progress_seconds=progress_seconds,
        abandon=stop,
        policy=policy,
        meter=meter,
    )


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


@pytest.mark.parametrize("mode", ["gcp"])
def test_a_gcs_chunk_is_streamed_from_the_spool_never_held_in_memory(emu: Emulator, tmp_path: Path) -> None:
    """Each GCS chunk goes up as a window over the spool that requests streams in small blocks: while
    chunks of 4 MiB are sent, the Python heap of the uploading process never grows by even a quarter of
    one (before, every chunk sat in memory twice while it was sent: the buffer it was read into and its
    copy). The object is the spool, byte for byte."""
    client = emu.client()
    chunk = 4 * 1024 * 1024
    data = os.urandom(3 * chunk + 12_345)  # three whole chunks and a short last one
    spool = GrowingFile(tmp_path / "spool.bin")
    spool.append(data)
    spool.finish()
    prepared = client.files.prepare_upload(spool.path.name, federation_token=True)
    uploader = GcsUploader(
        request_timeout=30,
        upload=UploadConfig(multipart_chunk_mb=chunk / 1024 / 1024, multipart_concurrency=4),
        progress_seconds=60,
        abandon=threading.Event(),
    )
    tracemalloc.start()
    try:
        uploader.upload_growing(prepared, spool, 0, "spool.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        spool.close()
    assert peak < chunk // 4, f"the upload's Python heap peaked at {peak / 1024 / 1024:.1f} MiB"
    assert Path(client.files.download(prepared["id"], str(tmp_path / "dl"))).read_bytes() == data


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


# -- the failure paths, one scripted cloud fault each ---------------------------------------------------

# The request each fault targets: an Azure Put Block (its query names the block; Put Block List's
# says comp=blocklist) or a GCS resumable chunk (a PUT to the session URL, status queries included).
BLOCK_OR_CHUNK = {"azure": "blockid=", "gcp": "upload_id="}
FAULTED_ROWS = 30_000  # ~1.2 MB gzipped: three 512 KiB blocks / chunks


def _lossy_upload(
    emu: Emulator, mode: str, tmp_path: Path, fault: dict[str, Any], **uploader: Any
) -> tuple[dict[str, Any], dict[str, int], int]:
    """Upload a finished file under the scripted `fault`: (prepared, requests the front door saw by
    method during the upload, the number of blocks / chunks of the file). Asserts the fault fired
    and the stored file is the one sent."""
    client = emu.client()
    data = _csv_gz(FAULTED_ROWS)
    path = tmp_path / "faulted.csv.gz"
    path.write_bytes(data)
    pieces = -(-len(data) // (512 * 1024))
    assert pieces == 3
    prepared = client.files.prepare_upload(path.name, size_bytes=len(data), federation_token=True)
    before = emu.stats()
    emu.set_faults(**fault)
    try:
        _uploader(mode, **uploader).upload_file(prepared, path, len(data), path.name)
        after = emu.stats()
    finally:
        emu.reset_faults()
    if fault:
        kind = f"cloud_{fault['cloud_fault']}"
        assert after["faults_injected"].get(kind, 0) > before["faults_injected"].get(kind, 0)
    seen = {m: n - before["s3_requests"].get(m, 0) for m, n in after["s3_requests"].items()}
    downloaded = client.files.download(prepared["id"], str(tmp_path / "dl"))
    assert Path(downloaded).read_bytes() == data
    return prepared, seen, pieces


@pytest.mark.parametrize("mode", CLOUDS)
def test_a_failed_block_or_chunk_is_sent_again_alone(emu: Emulator, mode: str, tmp_path: Path) -> None:
    """The second block / chunk is answered 503 and not stored: only it goes again (GCS first asks the
    session how much it holds); the progress line is logged as on S3."""
    fault = {"cloud_fault": "fail", "cloud_fault_match": BLOCK_OR_CHUNK[mode], "cloud_fault_nth": 2}
    _, seen, pieces = _lossy_upload(emu, mode, tmp_path, fault, retries=FAST_RETRIES)
    if mode == "azure":
        assert seen.get("PUT") == pieces + 1 + 1  # every block once, the failed one again, the block list
    else:
        assert seen.get("POST") == 1  # one session, never restarted
        assert seen.get("PUT") == pieces + 1 + 1  # every chunk once, one status query, the failed one again


@pytest.mark.parametrize("mode", CLOUDS)
def test_progress_lines_are_logged_as_for_s3(
    emu: Emulator, mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="keboola_sync.storage"):
        _lossy_upload(emu, mode, tmp_path, {}, progress_seconds=0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("uploading faulted.csv.gz: ")]
    assert len(lines) >= 2 and "MB/s, ETA" in lines[-1], lines


@pytest.mark.parametrize("mode", ["azure"])
def test_a_lost_put_block_list_answer_is_committed_again(emu: Emulator, tmp_path: Path) -> None:
    """Azure stored the block list but the answer was lost: the commit is sent again (same list, same
    blob) and the blob is whole."""
    fault = {"cloud_fault": "lose", "cloud_fault_match": "comp=blocklist"}
    _, seen, pieces = _lossy_upload(emu, "azure", tmp_path, fault, retries=FAST_RETRIES)
    assert seen.get("PUT") == pieces + 2  # the blocks once, the block list twice


@pytest.mark.parametrize("mode", ["gcp"])
def test_a_lost_answer_to_the_last_gcs_chunk_is_found_complete(emu: Emulator, tmp_path: Path) -> None:
    """GCS stored the last chunk (the object is complete) but its answer was lost: the status query
    (`Content-Range: bytes */*`) is answered 200 with the object, and the upload ends there, with
    no chunk sent again and no new session."""
    fault = {"cloud_fault": "lose", "cloud_fault_match": "upload_id=", "cloud_fault_nth": 3}
    _, seen, pieces = _lossy_upload(emu, "gcp", tmp_path, fault, retries=FAST_RETRIES)
    assert seen.get("POST") == 1
    assert seen.get("PUT") == pieces + 1  # the chunks once, then the status query


@pytest.mark.parametrize("mode", ["gcp"])
def test_a_gone_gcs_session_starts_a_new_one_with_the_whole_file(
    emu: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The session expired after the first chunk (410, then 404 for every later request): a new session
    is opened and the whole file goes again from the spool, with one warning line."""
    fault = {"cloud_fault": "gone", "cloud_fault_match": "upload_id=", "cloud_fault_nth": 2}
    with caplog.at_level(logging.WARNING, logger="keboola_sync.storage"):
        _, seen, pieces = _lossy_upload(emu, "gcp", tmp_path, fault, retries=FAST_RETRIES)
    assert seen.get("POST") == 2  # a second session
    assert seen.get("PUT") == 2 + pieces  # chunk 1, the gone chunk 2, then all of them again
    assert [r.getMessage() for r in caplog.records] == [
        "uploading faulted.csv.gz: the upload session is gone (HTTP 410); uploading the file again in a new session"
    ]


@pytest.mark.parametrize("mode", CLOUDS)
def test_a_stalled_answer_times_out_and_is_retried(emu: Emulator, mode: str, tmp_path: Path) -> None:
    """The second block / chunk is stored but its answer comes after the request timeout: the client
    gives up, the policy retries (Azure re-sends the block, GCS asks the session and goes on)."""
    fault = {
        "cloud_fault": "stall",
        "cloud_fault_match": BLOCK_OR_CHUNK[mode],
        "cloud_fault_nth": 2,
        "cloud_stall_seconds": 4,
    }
    _lossy_upload(emu, mode, tmp_path, fault, retries=FAST_RETRIES, request_timeout=1)


@pytest.mark.parametrize("mode", CLOUDS)
def test_an_expired_credential_is_terminal_and_never_quoted(emu: Emulator, mode: str, tmp_path: Path) -> None:
    """An expired SAS (Azure 403 AuthenticationFailed) or token (GCS 401) on the first request: no retry
    (the same credential cannot succeed; the load prepares the file afresh, as for S3's expired
    credentials), and the error names the cloud's answer, not the credential. The client libraries'
    own retries are off: exactly one request reached the front door."""
    client = emu.client()
    path = write(tmp_path / "expired.csv", "id,name\n1,a\n")
    prepared = client.files.prepare_upload(path.name, federation_token=True)
    secrets = _secrets(prepared)
    emu.set_faults(cloud_fault="refuse", cloud_fault_match="", cloud_fault_times=100)
    before = emu.stats()["s3_requests"]
    with pytest.raises(Exception) as caught:
        _uploader(mode, retries=FAST_RETRIES).upload_file(prepared, path, path.stat().st_size, "expired.csv")
    seen = sum(emu.stats()["s3_requests"].values()) - sum(before.values())
    error = classify(caught.value, "uploading expired.csv")
    assert type(error) is StorageTerminal and error.status == (403 if mode == "azure" else 401), error
    assert seen == 1
    text = f"{error} {caught.value!r}"
    assert "sig=" not in str(error) and not any(secret in text for secret in secrets), text
    assert ("AuthenticationFailed" if mode == "azure" else "GCS 401") in str(error)


@pytest.mark.parametrize("mode", CLOUDS)
def test_the_client_libraries_make_one_attempt_per_request(emu: Emulator, mode: str, tmp_path: Path) -> None:
    """Without a policy, a 503 is raised after one request: azure-core's and google-resumable-media's own
    retries are off, so the policy is the only retry loop (as botocore's are for S3)."""
    client = emu.client()
    path = write(tmp_path / "busy.csv", "id\n1\n")
    prepared = client.files.prepare_upload(path.name, federation_token=True)
    emu.set_faults(cloud_fault="fail", cloud_fault_match=BLOCK_OR_CHUNK[mode], cloud_fault_times=100)
    before = emu.stats()["faults_injected"].get("cloud_fail", 0)
    with pytest.raises(Exception) as caught:
        _uploader(mode).upload_file(prepared, path, path.stat().st_size, "busy.csv")
    assert emu.stats()["faults_injected"]["cloud_fail"] - before == 1
    assert classify(caught.value, "uploading busy.csv").status == 503


def _secrets(prepared: dict[str, Any]) -> list[str]:
    """The credentials of a prepare answer: the SAS's signature (and the whole SAS), or the token."""
    if "absUploadParams" in prepared:
        sas = prepared["absUploadParams"]["absCredentials"]["SASConnectionString"].split("SharedAccessSignature=")[1]
        return [sas, sas.split("sig=", 1)[1].split("&")[0]]
    return [prepared["gcsUploadParams"]["access_token"]]
