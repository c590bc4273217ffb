"""Decide and perform the sync of one file: the heart of the daemon.

`SyncService.sync(rel_path)` takes a path that has been stable for `watch.stable_seconds` and makes its
table equal to the file, or records why not. Every outcome ends in exactly one log line and one ledger
row, so `status` and the log always agree. The scheduler guarantees one call per table at a time.

What to do is decided by `decide()`, a pure function of what was observed of the file, its ledger row
and the clock; `SyncService` only gathers the observation and carries the decision out. The remote half
of a load lives in `load.py`.

Failure classes (architecture §4), all in one table (`ERROR_OUTCOMES`): a bad file is skipped until it
changes (logged once); a failing service is retried with backoff inside `storage`, then the file is
marked failed and tried again after `retry.failed_retry_seconds` (logged once per failure, not on every
retry); a job error that says the content is wrong is treated like a bad file.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path

from .config import Config
from .csvfile import CsvInfo, Spool, inspect_and_spool
from .errors import FileChanged, InvalidFile, SpoolError
from .fileid import Fingerprint, fingerprint, is_inside, observe
from .layout import Ignored, Layout, Rejected, Target
from .load import ContentRefused, HeaderRefused, Loaded, Loader, Overlap
from .outcome import GONE_MESSAGE, Action, Decision, Observation, Outcome, Status, error_outcome, os_problem
from .state import FileRecord, Ledger, LedgerState
from .storage import Abandoned, Storage, StorageError

__all__ = ["Action", "Decision", "Observation", "Outcome", "Status", "SyncService", "decide", "needs_work"]

log = logging.getLogger("keboola_sync.sync")


# -- deciding -----------------------------------------------------------------------------------------


def needs_work(fp: Fingerprint, record: FileRecord | None, now: float) -> bool:
    """Cheap test (no reading, no network) used by rescans: is there anything to do for this file?"""
    if record is None or record.in_flight:
        return True
    if record.seen != fp:
        return True
    if record.state == LedgerState.FAILED:
        return record.next_retry_at is not None and record.next_retry_at <= now
    return record.state == LedgerState.PENDING


def decide(
    rel_path: str, target: Target | Ignored | Rejected, seen: Observation, record: FileRecord | None, now: float
) -> Decision:
    """What to do with one stable file. Pure: the same inputs always give the same decision."""
    if isinstance(target, Ignored):
        return Decision(Action.IGNORE, target.reason)
    fp = seen.fingerprint
    if fp is None:
        if not seen.exists:
            return Decision(Action.GONE, GONE_MESSAGE)
        # No fingerprint is remembered: fixing permissions or a link changes no size or mtime, so the
        # file is looked at again on every rescan (one failed open), logged only once.
        problem = os_problem(rel_path, seen.error) if seen.error else f"{rel_path}: cannot be read"
        return Decision(Action.SKIP, problem)
    if isinstance(target, Rejected):
        return Decision(Action.SKIP, f"{rel_path}: {target.problem}. {target.fix}", version=fp)
    if not seen.inside:
        message = (
            f"{rel_path}: a symbolic link that points outside the watched folder (or "
            "nowhere); it is not followed. Copy the file into the folder instead"
        )
        return Decision(Action.SKIP, message, target.table_id, fp)
    if seen.rival is not None:
        message = (
            f"{rel_path}: maps to table {target.table_id}, which {seen.rival} already loads. "
            "Rename one of the two files"
        )
        return Decision(Action.SKIP, message, version=fp)
    if record is not None and not needs_work(fp, record, now):
        action = Action.WAIT if record.state == LedgerState.FAILED else Action.NOTHING
        return Decision(action, record.error or "", target.table_id)
    rename = target.renamed and (record is None or record.table_id != target.table_id)
    return Decision(Action.LOAD, "", target.table_id, fp, announce_rename=rename)


# -- doing ---------------------------------------------------------------------------------------------


class SyncService:
    def __init__(self, config: Config, storage: Storage, ledger: Ledger) -> None:
        self.config = config
        self.storage = storage
        self.ledger = ledger
        self.root = config.watch.path
        self._buckets = ledger.known_buckets()
        self._warned_folders: set[str] = set()
        self._bucket_lock = threading.Lock()
        self.loader = Loader(config, storage, ledger, self._buckets, self.ensure_folder)

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
        return needs_work(fp, record, now)

    def sync(self, rel_path: str) -> Outcome:
        target = self.target_for(rel_path)
        seen = self.observe(rel_path, target)
        record = self.ledger.get(rel_path) if isinstance(target, Target) else None
        decision = decide(rel_path, target, seen, record, time.time())
        action = decision.action
        if action is Action.SKIP:
            return self._skip(rel_path, decision.table_id, decision.version, decision.message)
        if action is not Action.LOAD or not isinstance(target, Target) or decision.version is None:
            status = _STATUS_OF_ACTION[action]
            return Outcome(rel_path, status, decision.message, decision.table_id)
        if decision.announce_rename:
            log.warning(
                "%s is loaded as table %s (Keboola allows only letters, digits, - and _ in names)",
                rel_path,
                target.table_id,
                extra={"file": rel_path, "table": target.table_id},
            )
        return self._load(rel_path, self.root / rel_path, target, decision.version, record)

    def observe(self, rel_path: str, target: Target | Ignored | Rejected) -> Observation:
        """Everything `decide` needs to know about the file, looked at in the order it is judged."""
        if isinstance(target, Ignored):
            return Observation(None)
        path = self.root / rel_path
        try:
            fp = fingerprint(path)
        except OSError as exc:
            return Observation(None, exc, exists=observe(path) is not None)
        if isinstance(target, Rejected):
            return Observation(fp)
        if not is_inside(path, self.root):
            return Observation(fp, inside=False)
        owner = self.ledger.owner_of_table(target.table_id)
        rival = owner if owner and owner != rel_path and (self.root / owner).exists() else None
        return Observation(fp, rival=rival)

    def _load(self, rel_path: str, path: Path, target: Target, fp: Fingerprint, record: FileRecord | None) -> Outcome:
        started = time.monotonic()
        try:
            info, spool, fresh_file_id = self._pass(rel_path, path, target, fp, record)
        except (InvalidFile, SpoolError, FileChanged, OSError) as exc:
            return self._on_error(rel_path, target.table_id, fp, exc, record)
        try:
            if record is not None and record.state == LedgerState.SYNCED and record.sha256 == info.sha256:
                # A touch (or a copy of the same bytes): Keboola already holds this content.
                self.ledger.record_unchanged(rel_path, target.table_id, info.fingerprint)
                return Outcome(rel_path, Status.UNCHANGED, "content unchanged", target.table_id)
            try:
                loaded = self.loader.load(rel_path, target, info, spool, record, fresh_file_id)
            except (Abandoned, StorageError, HeaderRefused, ContentRefused) as exc:
                return self._on_error(rel_path, target.table_id, info.fingerprint, exc, record)
            return self._finish(rel_path, path, target, info, spool, loaded, started)
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
            overlap = Overlap(self.loader, rel_path, target, fp.size)
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

    def _finish(
        self, rel_path: str, path: Path, target: Target, info: CsvInfo, spool: Spool, loaded: Loaded, started: float
    ) -> Outcome:
        """The table holds the file: record it, say so in one line, and notice a change made meanwhile."""
        for warning in info.warnings:  # loaded, but perhaps not as the user meant: say so
            log.warning("%s: %s", rel_path, warning, extra={"file": rel_path})
        seconds = time.monotonic() - started
        rows = loaded.outcome.rows
        columns = loaded.outcome.columns or info.columns
        self.ledger.record_synced(rel_path, target.table_id, info.fingerprint, info.sha256, columns, rows)
        compressed = f", gzip {spool.size / 1e6:.1f} MB" if spool.gzipped else ""
        rate = info.size / 1e6 / max(seconds, 1e-6)
        status = Status.CREATED if loaded.created else Status.LOADED
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
            return Outcome(rel_path, Status.CHANGED, "changed during the load", target.table_id)
        return Outcome(rel_path, status, "", target.table_id)

    # -- outcomes ----------------------------------------------------------------------------------

    def _on_error(
        self, rel_path: str, table_id: str, version: Fingerprint, exc: BaseException, before: FileRecord | None
    ) -> Outcome:
        """What becomes of the file after `exc`, from the one table; an error it does not know is raised."""
        rule = error_outcome(exc)
        if rule is None:
            raise exc
        message = rule.message(rel_path, exc)
        remembered = version if rule.remember else None
        if rule.status is Status.SKIPPED:
            return self._skip(rel_path, table_id, remembered, message)
        if rule.status is Status.FAILED:
            return self._fail(rel_path, table_id, remembered, message, before)
        if rule.status is Status.ABANDONED:
            log.warning("%s: %s; the next start finishes it", rel_path, exc, extra={"file": rel_path})
        return Outcome(rel_path, rule.status, message, table_id)

    def _skip(self, rel_path: str, table_id: str | None, fp: Fingerprint | None, message: str) -> Outcome:
        """Invalid as it is: one WARNING line, then silence until the file (or the problem) changes."""
        previous = self.ledger.get(rel_path)
        self.ledger.record_skipped(rel_path, table_id, fp, message)
        if (
            previous is None
            or previous.state != LedgerState.SKIPPED
            or previous.error != message
            or previous.seen != fp
        ):
            log.warning("skipped %s", message, extra={"file": rel_path, "outcome": "skipped"})
        return Outcome(rel_path, Status.SKIPPED, message, table_id)

    def _fail(
        self, rel_path: str, table_id: str | None, fp: Fingerprint | None, message: str, before: FileRecord | None
    ) -> Outcome:
        """Keboola failed: one ERROR line when this version of the file starts failing; a retry that
        fails again is logged at DEBUG only (its message differs by a job id or a status code, so it
        is not compared)."""
        retry_in = self.config.retry.failed_retry_seconds
        self.ledger.record_failed(rel_path, table_id, fp, message, time.time() + retry_in)
        # Judged against the row as this sync found it: the load itself marks the row pending on upload.
        new = before is None or before.state != LedgerState.FAILED or before.seen != fp
        log.log(
            logging.ERROR if new else logging.DEBUG,
            "failed %s: %s; trying again in %.0f s or when the file changes",
            rel_path,
            message,
            retry_in,
            extra={"file": rel_path, "outcome": "failed"},
        )
        return Outcome(rel_path, Status.FAILED, message, table_id)

    def tables_dropped_remotely(self) -> list[str]:
        """Paths whose table was deleted in Keboola although the file did not change: forget what the
        table held so they load again. One list call; rows recorded after it started are not judged."""
        asked_at = time.time()
        remote = self.storage.list_table_ids()
        paths = []
        for record in self.ledger.all():
            if record.state != LedgerState.SYNCED or not record.table_id or record.table_id in remote:
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
        """Loads that were in flight when the daemon last stopped: ask Keboola how each job ended."""
        self.loader.resolve_in_flight()


_STATUS_OF_ACTION = {
    Action.IGNORE: Status.IGNORED,
    Action.GONE: Status.GONE,
    Action.NOTHING: Status.UNCHANGED,
    Action.WAIT: Status.WAITING,
}
