"""Decide and perform the sync of one file: the heart of the daemon.

`SyncService.sync(rel_path)` takes a path that has been stable for `watch.stable_seconds` and makes its
table equal to the file, or records why not. Every outcome ends in exactly one log line and one ledger
row, so `status` and the log always agree. The scheduler guarantees one call per table at a time.

Failure classes (architecture §4): a bad file is skipped until it changes (logged once); a failing
service is retried with backoff inside `storage`, then the file is marked failed and tried again after
`retry.failed_retry_seconds`; a job error that says the content is wrong is treated like a bad file.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .csvfile import CsvInfo, Dialect, Spool, SpoolReader, inspect_and_spool
from .errors import FileChanged, InvalidFile, SpoolError
from .fileid import Fingerprint, fingerprint, is_inside, observe
from .layout import Ignored, Layout, Rejected, Target
from .state import FileRecord, Ledger
from .storage import (
    MISSING_TARGET_CODES,
    Abandoned,
    JobFailed,
    JobOutcome,
    NotFound,
    Storage,
    StorageError,
    TokenRejected,
)

log = logging.getLogger("keboola_sync.sync")

# How often one sync may go around the "upload again / create again / retry the job" loop.
MAX_LOAD_ROUNDS = 4


@dataclass(frozen=True)
class Outcome:
    """What happened to one file. `status` is one of: loaded, created, unchanged, skipped, failed,
    waiting (failed earlier, retry not due), changed (changed while we read it: schedule again),
    gone (deleted before we got to it), ignored, abandoned (shutdown)."""

    rel_path: str
    status: str
    message: str = ""
    table_id: str | None = None


class SyncService:
    def __init__(self, config: Config, storage: Storage, ledger: Ledger) -> None:
        self.config = config
        self.storage = storage
        self.ledger = ledger
        self.root = config.watch.path
        self._buckets = ledger.known_buckets()
        self._warned_folders: set[str] = set()
        self._bucket_lock = threading.Lock()

    # -- classification ------------------------------------------------------------------------------

    @functools.cached_property
    def layout(self) -> Layout:
        """The naming and ignore rules, built once from the config."""
        return Layout.from_config(self.config)

    def target_for(self, rel_path: str) -> Target | Ignored | Rejected:
        return self.layout.classify(rel_path)

    # -- folders -> buckets -----------------------------------------------------------------------

    def _folder(self, folder: str) -> tuple[str, str] | Ignored | Rejected:
        return self.layout.folder(folder)

    def ensure_folder(self, folder: str) -> str | None:
        """A first-level folder appeared: make sure its bucket exists (checked first, then created)."""
        result = self._folder(folder)
        if isinstance(result, Ignored):
            return None
        if isinstance(result, Rejected):
            if folder not in self._warned_folders:
                self._warned_folders.add(folder)
                log.warning(
                    "folder %s is not synced: %s. %s", folder, result.problem, result.fix, extra={"folder": folder}
                )
            return None
        bucket_name, bucket_id = result
        if bucket_id in self._buckets:
            return bucket_id
        with self._bucket_lock:  # a folder job and its first file may both get here: one checks, one skips
            if bucket_id in self._buckets:
                return bucket_id
            return self._ensure_bucket(folder, bucket_name, bucket_id)

    def _ensure_bucket(self, folder: str, bucket_name: str, bucket_id: str) -> str:
        _, created = self.storage.ensure_bucket(bucket_name, self.config.keboola.stage)
        if created:
            log.info("created bucket %s for folder %s", bucket_id, folder, extra={"bucket": bucket_id})
        else:
            log.info("bucket %s for folder %s already exists", bucket_id, folder, extra={"bucket": bucket_id})
        self.ledger.record_bucket(bucket_id, folder)
        self._buckets.add(bucket_id)
        return bucket_id

    def bucket_known(self, folder: str) -> bool:
        """Already created or checked (this run or recorded in the ledger): no Keboola call needed."""
        result = self._folder(folder)
        return not isinstance(result, tuple) or result[1] in self._buckets

    def folder_ignored(self, folder: str) -> bool:
        """Hidden, junk and `watch.ignore_patterns` folders are not synced (their files are not looked at)."""
        return self.layout.folder_ignored(folder)

    # -- files -> tables -----------------------------------------------------------------------------

    def needs_work(self, rel_path: str, fp: Fingerprint, record: FileRecord | None, now: float) -> bool:
        """Cheap test (no reading, no network) used by rescans: is there anything to do for this file?"""
        if record is None or record.in_flight:
            return True
        if record.seen != fp:
            return True
        if record.state == "failed":
            return record.next_retry_at is not None and record.next_retry_at <= now
        return record.state == "pending"

    def sync(self, rel_path: str) -> Outcome:
        target = self.target_for(rel_path)
        if isinstance(target, Ignored):
            return Outcome(rel_path, "ignored", target.reason)
        path = self.root / rel_path
        try:
            fp = fingerprint(path)
        except OSError as exc:
            if observe(path) is None:
                return Outcome(rel_path, "gone", "deleted before it could be loaded")
            # No fingerprint is remembered: fixing permissions or a link changes no size or mtime, so
            # the file is looked at again on every rescan (one failed open), logged only once.
            return self._skip(rel_path, None, None, None, self._os_problem(rel_path, exc))
        if isinstance(target, Rejected):
            return self._skip(rel_path, None, fp, None, f"{rel_path}: {target.problem}. {target.fix}")
        if not is_inside(path, self.root):
            return self._skip(
                rel_path,
                target.table_id,
                fp,
                None,
                f"{rel_path}: a symbolic link that points outside the watched folder (or "
                "nowhere); it is not followed. Copy the file into the folder instead",
            )
        owner = self.ledger.owner_of_table(target.table_id)
        if owner and owner != rel_path and (self.root / owner).exists():
            return self._skip(
                rel_path,
                None,
                fp,
                None,
                f"{rel_path}: maps to table {target.table_id}, which {owner} already loads. "
                "Rename one of the two files",
            )
        record = self.ledger.get(rel_path)
        if record is not None and not self.needs_work(rel_path, fp, record, time.time()):
            status = "waiting" if record.state == "failed" else "unchanged"
            return Outcome(rel_path, status, record.error or "", target.table_id)
        if target.renamed and (record is None or record.table_id != target.table_id):
            log.warning(
                "%s is loaded as table %s (Keboola allows only letters, digits, - and _ in names)",
                rel_path,
                target.table_id,
                extra={"file": rel_path, "table": target.table_id},
            )
        return self._load(rel_path, path, target, fp, record)

    def _load(self, rel_path: str, path: Path, target: Target, fp: Fingerprint, record: FileRecord | None) -> Outcome:
        started = time.monotonic()
        try:
            info, spool, fresh_file_id = self._pass(rel_path, path, target, fp, record)
        except InvalidFile as exc:
            return self._skip(rel_path, target.table_id, fp, None, str(exc))
        except SpoolError as exc:  # our disk, not the user's file: fail and retry, never skip
            return self._fail(rel_path, target.table_id, None, str(exc))
        except FileChanged:
            return Outcome(rel_path, "changed", "changed while being read", target.table_id)
        except FileNotFoundError:
            return Outcome(rel_path, "gone", "deleted before it could be loaded", target.table_id)
        except OSError as exc:
            return self._skip(rel_path, target.table_id, None, None, self._os_problem(rel_path, exc))
        try:
            if record is not None and record.state == "synced" and record.sha256 == info.sha256:
                # A touch (or a copy of the same bytes): Keboola already holds this content.
                self.ledger.record_unchanged(rel_path, target.table_id, info.fingerprint)
                return Outcome(rel_path, "unchanged", "content unchanged", target.table_id)
            return self._load_checked(rel_path, path, target, info, spool, record, started, fresh_file_id)
        finally:
            spool.path.unlink(missing_ok=True)

    def _pass(
        self, rel_path: str, path: Path, target: Target, fp: Fingerprint, record: FileRecord | None
    ) -> tuple[CsvInfo, Spool, int | None]:
        """The one streaming pass over the file, with the upload overlapping it for big changed files."""
        cfg = self.config
        threshold = int(cfg.upload.gzip_threshold_mb * 1024 * 1024)
        # A big new (or resized, so surely changed) file: upload while compressing. Same-size changes and
        # touches take the plain path, so an unchanged file is never uploaded just to learn its hash.
        overlap = None
        changed_size = record is None or record.seen is None or record.seen.size != fp.size
        kept_upload = record is not None and record.file_id is not None and record.pending == fp
        if fp.size > threshold and changed_size and not kept_upload:
            overlap = _Overlap(self, rel_path, target, fp.size)
        try:
            info, spool = inspect_and_spool(
                path,
                spool_dir=cfg.upload.spool_dir,
                gzip_threshold_bytes=threshold,
                gzip_level=cfg.upload.gzip_level,
                gzip_threads=cfg.upload.gzip_threads,
                sniff_bytes=cfg.csv.sniff_bytes,
                delimiters=cfg.csv.delimiters,
                display_path=rel_path,
                on_header=overlap.on_header if overlap else None,
            )
        except BaseException:
            if overlap is not None:
                overlap.result()  # the spool was abandoned, so the upload stops too; wait for it
            raise
        return info, spool, overlap.result() if overlap is not None else None

    def _load_checked(
        self,
        rel_path: str,
        path: Path,
        target: Target,
        info: CsvInfo,
        spool: Spool,
        record: FileRecord | None,
        started: float,
        fresh_file_id: int | None,
    ) -> Outcome:
        try:
            outcome = self._load_remote(rel_path, target, info, spool, record, fresh_file_id)
        except Abandoned as exc:
            log.warning("%s: %s; the next start finishes it", rel_path, exc, extra={"file": rel_path})
            return Outcome(rel_path, "abandoned", str(exc), target.table_id)
        except JobFailed as exc:
            if exc.kind == "content":
                # One line: Keboola's refusal, with what our inspection suspected as the likely cause.
                cause = f"; probably because {'; '.join(info.warnings)}" if info.warnings else ""
                return self._skip(
                    rel_path,
                    target.table_id,
                    info.fingerprint,
                    info.sha256,
                    f"{rel_path}: Keboola refused the file: {exc} ({exc.code}){cause}. Fix the "
                    "file; it is loaded again when it changes",
                )
            return self._fail(rel_path, target.table_id, info, str(exc))
        except TokenRejected as exc:
            return self._fail(
                rel_path,
                target.table_id,
                info,
                f"{exc}. Keboola refused the token: it was revoked or has expired (or "
                "KBC_STORAGE_API_HOST is another stack). Put a valid KBC_STORAGE_API_TOKEN in .env "
                "and restart keboola-sync",
            )
        except StorageError as exc:
            return self._fail(rel_path, target.table_id, info, str(exc))
        if isinstance(outcome, Outcome):
            return outcome
        outcome, kind = outcome
        for warning in info.warnings:  # loaded, but perhaps not as the user meant: say so
            log.warning("%s: %s", rel_path, warning, extra={"file": rel_path})
        seconds = time.monotonic() - started
        rows = outcome.rows
        columns = outcome.columns or info.columns
        self.ledger.record_synced(
            rel_path, target.table_id, info.fingerprint, info.sha256, columns, rows, spool.size, seconds
        )
        compressed = f", gzip {spool.size / 1e6:.1f} MB" if spool.gzipped else ""
        rate = info.size / 1e6 / max(seconds, 1e-6)
        status = "created" if kind == "create" else "loaded"
        log.info(
            "%s %s -> %s: %s rows, %.1f MB%s, %.1f s, %.1f MB/s",
            status,
            rel_path,
            target.table_id,
            rows if rows is not None else "?",
            info.size / 1e6,
            compressed,
            seconds,
            rate,
            extra={
                "file": rel_path,
                "table": target.table_id,
                "outcome": status,
                "rows": rows,
                "bytes": info.size,
                "upload_bytes": spool.size,
                "seconds": round(seconds, 3),
            },
        )
        try:
            changed = fingerprint(path) != info.fingerprint
        except OSError:
            changed = False
        if changed:
            log.info("%s changed during the load; loading the new content next", rel_path, extra={"file": rel_path})
            return Outcome(rel_path, "changed", "changed during the load", target.table_id)
        return Outcome(rel_path, status, "", target.table_id)

    def _load_remote(
        self,
        rel_path: str,
        target: Target,
        info: CsvInfo,
        spool: Spool,
        record: FileRecord | None,
        fresh_file_id: int | None,
    ) -> tuple[JobOutcome, str] | Outcome:
        """Bucket, header check, upload (or reuse of a kept upload), job, wait. Loops when Keboola says
        the uploaded file is gone (upload again) or the table vanished behind our back (create again)."""
        cfg = self.config
        # A kept upload of the same content (a crash or failure after an earlier upload) wins over a fresh
        # one: an import of it may already have been sent, and only the kept id can be looked up.
        kept = self._reusable_file_id(record, info)
        file_id = kept or fresh_file_id
        last_error: StorageError | None = None
        for round_no in range(MAX_LOAD_ROUNDS):
            if target.bucket_id not in self._buckets:
                self.ensure_folder(target.folder)
            remote = self.storage.get_table(target.table_id)
            if remote is not None:
                missing, extra = self.header_difference(remote.columns, info.columns)
                if self.header_refused(remote.columns, info.columns):
                    return self._skip(
                        rel_path,
                        target.table_id,
                        info.fingerprint,
                        info.sha256,
                        f"{rel_path}: the header no longer matches table {target.table_id}"
                        + (f"; missing columns: {', '.join(missing)}" if missing else "")
                        + (f"; new columns: {', '.join(extra)}" if extra else "")
                        + ". Nothing was changed in Keboola. Restore the header, or drop the table in Keboola "
                        "to recreate it from the file" + ("" if missing else ", or set csv.on_header_change: load"),
                    )
            elif record is not None and record.columns is not None:
                log.warning(
                    "table %s no longer exists in Keboola; creating it again from %s",
                    target.table_id,
                    rel_path,
                    extra={"file": rel_path, "table": target.table_id},
                )
            kind = "import" if remote is not None else "create"
            job_id = None
            if file_id is None:
                file_id = self.storage.upload(spool.path, label=rel_path)
            elif round_no == 0 and kept is not None:
                # An upload kept from an earlier run: an import for it may have been sent just before a crash.
                job_id = self.storage.find_job_for_file(file_id, target.table_id)
            self.ledger.record_uploaded(
                rel_path, target.table_id, info.fingerprint, info.sha256, info.columns, file_id, kind
            )
            if job_id is None:
                try:
                    if kind == "create":
                        job_id = self.storage.start_create_table(
                            target.bucket_id, target.table_name, file_id, info.dialect
                        )
                    else:
                        job_id = self.storage.start_full_load(target.table_id, file_id, info.dialect)
                except NotFound as exc:
                    if exc.code not in MISSING_TARGET_CODES:
                        raise
                    last_error = exc
                    self._target_vanished(rel_path, target, exc)
                    continue
            self.ledger.record_job_started(rel_path, job_id)
            try:
                outcome = self.storage.wait_for_job(job_id, what=f"{kind} {target.table_id}")
            except JobFailed as exc:
                self.ledger.clear_in_flight(rel_path)
                last_error = exc
                if exc.kind == "file":
                    log.warning("%s: %s; uploading again", rel_path, exc, extra={"file": rel_path})
                    self.ledger.forget_file_id(rel_path)
                    file_id = None
                    continue
                if exc.kind == "missing":
                    self._target_vanished(rel_path, target, exc)
                    continue
                if exc.kind == "transient":
                    log.warning(
                        "%s: %s; retrying the import from the uploaded file", rel_path, exc, extra={"file": rel_path}
                    )
                    if self.storage.abandon.wait(min(2.0 * (1 + round_no), cfg.retry.max_backoff_seconds)):
                        raise Abandoned("shutdown while waiting to retry the import") from exc
                    continue
                raise
            if outcome.rows is None:
                remote_after = self.storage.get_table(target.table_id)
                if remote_after is not None:
                    outcome = JobOutcome(outcome.job_id, outcome.results, remote_after.rows_count, remote_after.columns)
            return outcome, kind
        assert last_error is not None
        raise last_error

    @staticmethod
    def header_difference(table: tuple[str, ...], file: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """(table columns the file lacks, file columns the table lacks); order does not matter, since
        Keboola matches columns by name (§4.5.1)."""
        return [c for c in table if c not in file], [c for c in file if c not in table]

    def header_refused(self, table: tuple[str, ...], file: tuple[str, ...]) -> bool:
        missing, extra = self.header_difference(table, file)
        return bool(missing or (extra and self.config.csv.on_header_change == "skip"))

    def _target_vanished(self, rel_path: str, target: Target, exc: StorageError) -> None:
        """The bucket (or table) was deleted in Keboola behind our back: create it again (§7.2 codes)."""
        what = "bucket " + target.bucket_id if exc.code == "storage.buckets.notFound" else "table " + target.table_id
        log.warning(
            "%s no longer exists in Keboola; creating it again for %s",
            what,
            rel_path,
            extra={"file": rel_path, "table": target.table_id},
        )
        self._buckets.discard(target.bucket_id)
        self.ledger.forget_bucket(target.bucket_id)

    def _reusable_file_id(self, record: FileRecord | None, info: CsvInfo) -> int | None:
        """A failed or interrupted load of the same content kept its Keboola file: import it again
        instead of uploading again, while the file is still valid (§5.4: 15-day expiry)."""
        if record is None or record.file_id is None or record.pending_sha256 != info.sha256:
            return None
        if self.storage.file_is_usable(record.file_id, record.file_uploaded_at):
            log.info("reusing upload %s of %s (same content)", record.file_id, record.path, extra={"file": record.path})
            return record.file_id
        self.ledger.forget_file_id(record.path)
        return None

    # -- outcomes ----------------------------------------------------------------------------------

    def _skip(
        self, rel_path: str, table_id: str | None, fp: Fingerprint | None, sha256: str | None, message: str
    ) -> Outcome:
        """Invalid as it is: one WARNING line, then silence until the file (or the problem) changes."""
        previous = self.ledger.get(rel_path)
        self.ledger.record_skipped(rel_path, table_id, fp, sha256, message)
        if previous is None or previous.state != "skipped" or previous.error != message or previous.seen != fp:
            log.warning("skipped %s", message, extra={"file": rel_path, "outcome": "skipped"})
        return Outcome(rel_path, "skipped", message, table_id)

    def _fail(self, rel_path: str, table_id: str | None, info: CsvInfo | None, message: str) -> Outcome:
        retry_in = self.config.retry.failed_retry_seconds
        self.ledger.record_failed(
            rel_path,
            table_id,
            info.fingerprint if info else None,
            info.sha256 if info else None,
            message,
            time.time() + retry_in,
        )
        log.error(
            "failed %s: %s; trying again in %.0f s or when the file changes",
            rel_path,
            message,
            retry_in,
            extra={"file": rel_path, "outcome": "failed"},
        )
        return Outcome(rel_path, "failed", message, table_id)

    @staticmethod
    def _os_problem(rel_path: str, exc: OSError) -> str:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"{rel_path}: cannot be read (permission denied). Make it readable: chmod a+r '{rel_path}'"
        if exc.errno == errno.ELOOP:
            return f"{rel_path}: a symbolic link loop. Replace the link with the file itself"
        if exc.errno == errno.ENOENT:
            return (
                f"{rel_path}: a symbolic link that points nowhere (its target does not exist). "
                "Replace the link with the file itself"
            )
        return f"{rel_path}: cannot be read ({exc.strerror or exc}). Check the file and the mount"

    def tables_dropped_remotely(self) -> list[str]:
        """Paths whose table was deleted in Keboola although the file did not change: forget what the
        table held so they load again. One list call; rows recorded after it started are not judged."""
        asked_at = time.time()
        remote = self.storage.list_table_ids()
        paths = []
        for record in self.ledger.all():
            if record.state != "synced" or not record.table_id or record.table_id in remote:
                continue
            if (record.last_load_at or 0) >= asked_at or not (self.root / record.path).exists():
                continue
            if observe(self.root / record.path) != record.seen:
                continue  # changed as well: its load is on the way and will say the table is gone
            log.warning(
                "table %s was deleted in Keboola; loading %s again",
                record.table_id,
                record.path,
                extra={"file": record.path, "table": record.table_id},
            )
            self.ledger.forget_table(record.table_id)
            paths.append(record.path)
        return paths

    # -- start-up ----------------------------------------------------------------------------------

    def resolve_in_flight(self) -> None:
        """Loads that were in flight when the daemon last stopped: ask Keboola how each job ended, never
        re-send blindly. A finished job is recorded; a failed one is forgotten (its upload is kept)."""
        for record in self.ledger.in_flight():
            assert record.job_id is not None
            try:
                job = self.storage.job_status(record.job_id)
                if job is not None and job.get("status") not in ("success", "error"):
                    log.info(
                        "waiting for job %s of %s, started before the restart",
                        record.job_id,
                        record.path,
                        extra={"file": record.path},
                    )
                    with contextlib.suppress(JobFailed):  # its error is read from the job below
                        self.storage.wait_for_job(record.job_id, what=f"load of {record.path}")
                    job = self.storage.job_status(record.job_id)
            except Abandoned:
                raise
            except StorageError as exc:
                log.warning("cannot resolve job %s of %s yet: %s", record.job_id, record.path, exc)
                continue
            if job is not None and job.get("status") == "success" and record.pending and record.pending_sha256:
                table = self.storage.get_table(record.table_id) if record.table_id else None
                self.ledger.record_synced(
                    record.path,
                    record.table_id or "",
                    record.pending,
                    record.pending_sha256,
                    table.columns if table else (record.pending_columns or ()),
                    table.rows_count if table else None,
                    None,
                    None,
                )
                log.info(
                    "job %s of %s finished while the daemon was down; recorded it",
                    record.job_id,
                    record.path,
                    extra={"file": record.path, "outcome": "loaded"},
                )
            else:
                self.ledger.clear_in_flight(record.path)


class _Overlap:
    """Uploads a big file's gzip spool while the pass is still writing it (issue 7: the uplink, not the
    CPU, should set the pace). Best effort: if anything goes wrong, the caller uploads the finished spool
    with the full retry policy. Never starts when the header would be refused: nothing remote is touched
    for a file that is going to be skipped."""

    def __init__(self, service: SyncService, rel_path: str, target: Target, size: int) -> None:
        self._service, self._rel_path, self._size = service, rel_path, size
        self._thread: threading.Thread | None = None
        self._file_id: int | None = None
        try:
            remote = service.storage.get_table(target.table_id)
            self._remote_columns = remote.columns if remote is not None else None
            self._known = True
        except StorageError:
            self._known = False  # Keboola is not answering: the plain path will retry and report

    def on_header(self, dialect: Dialect, columns: tuple[str, ...], reader: SpoolReader | None) -> None:
        if reader is None:
            return
        if not self._known or (
            self._remote_columns is not None and self._service.header_refused(self._remote_columns, columns)
        ):
            reader.close()
            return
        self._thread = threading.Thread(target=self._upload, args=(reader,), name="overlap-upload", daemon=True)
        self._thread.start()

    def _upload(self, reader: SpoolReader) -> None:
        try:
            self._file_id = self._service.storage.upload_stream(
                reader, name=reader.name, size_hint=self._size, label=self._rel_path
            )
        except Exception as exc:  # the finished spool is uploaded the ordinary way instead
            if reader.abandoned:  # the pass refused the file: its own outcome line says why
                log.debug("%s: upload during the pass stopped with the pass", self._rel_path)
            else:
                log.info(
                    "%s: uploading while compressing did not work (%s); uploading the finished file",
                    self._rel_path,
                    exc,
                    extra={"file": self._rel_path},
                )
        finally:
            reader.close()

    def result(self) -> int | None:
        if self._thread is not None:
            self._thread.join()
        return self._file_id
