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

import logging
import re
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from .config import Config
from .csvfile import CsvInfo, Spool, inspect_and_spool
from .errors import FileChanged, InvalidFile, SpoolError
from .fileid import Fingerprint, fingerprint, is_inside, observe
from .layout import Ignored, Layout, Rejected, Target
from .live import LiveConfig
from .load import ContentRefused, HeaderRefused, Loaded, Loader, NotOwned, Overlap
from .outcome import GONE_MESSAGE, Action, Decision, Observation, Outcome, Status, error_outcome, os_problem
from .state import DEPENDS_TABLE, RIVAL, FileRecord, Ledger, LedgerState
from .storage import Abandoned, Storage, StorageError
from .storage.metadata import parse_date

__all__ = [
    "Action",
    "Decision",
    "Observation",
    "Outcome",
    "Status",
    "SyncService",
    "decide",
    "judged_by_the_table",
    "needs_work",
    "retry_spacing",
    "skip_already_said",
]

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
        return Decision(Action.SKIP, message, version=fp, depends=RIVAL + seen.rival)
    if record is not None and not seen.rejudge and not _rival_gone(record, seen) and not needs_work(fp, record, now):
        action = Action.WAIT if record.state == LedgerState.FAILED else Action.NOTHING
        return Decision(action, record.error or "", target.table_id)
    rename = target.renamed and (record is None or record.table_id != target.table_id)
    return Decision(Action.LOAD, "", target.table_id, fp, announce_rename=rename)


def _rival_gone(record: FileRecord, seen: Observation) -> bool:
    """Skipped because another file loaded its table, and that file no longer does (renamed, deleted):
    the verdict is judged again although this file did not change (issue 12 item 4)."""
    return bool(record.depends and record.depends.startswith(RIVAL) and seen.rival is None)


def retry_spacing(previous: float | None, first: float, cap: float) -> float:
    """How long a failed file waits before the next try: `first`, then doubling while the same version
    keeps failing, never more than `cap`. A failure Keboola explains no better than "error" must never
    become an import every few minutes forever (issue 13)."""
    if previous is None:
        return min(first, cap)
    return min(max(previous * 2, first), cap)


# -- doing ---------------------------------------------------------------------------------------------


class SyncService:
    def __init__(
        self,
        config: Config | LiveConfig,
        storage: Storage,
        ledger: Ledger,
        layout: Layout | None = None,
        *,
        spool_dir: Path | None = None,
    ) -> None:
        # The running daemon passes its LiveConfig, so a reloaded config.yaml applies from the next use.
        self.live = config if isinstance(config, LiveConfig) else LiveConfig(config, layout)
        self.storage = storage
        self.ledger = ledger
        self.root = self.live.config.watch.path  # watch.path needs a restart
        self._buckets = ledger.known_buckets()
        self._bucket_of = ledger.bucket_of_folder()  # the ids Keboola gave; they win over predictions
        self._warned_folders: set[str] = set()
        self._bucket_lock = threading.Lock()
        self._rejudged: set[str] = set()  # table-dependent skips already judged again in this process
        self.loader = Loader(self.live, storage, ledger, self._buckets, self.ensure_folder)
        # This process's own spool folder (a locked sub-directory of upload.spool_dir, see spool.py).
        self.spool_dir = spool_dir

    # -- classification ------------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The configuration in force now (read per use: it may be reloaded while running)."""
        return self.live.config

    @property
    def layout(self) -> Layout:
        """The naming and ignore rules of the configuration in force."""
        return self.live.layout

    def target_for(self, rel_path: str) -> Target | Ignored | Rejected:
        target = self.layout.classify(rel_path)
        if isinstance(target, Target) and target.folder in self._bucket_of:
            return target.in_bucket(self._bucket_of[target.folder])
        return target

    # -- folders -> buckets -----------------------------------------------------------------------

    def folder_bucket(self, folder: str) -> tuple[str, str] | Ignored | Rejected:
        """(bucket name, bucket id) of a first-level folder: the id Keboola gave it when the ledger has
        one, else the layout's prediction; or why the folder is not synced."""
        result = self.layout.folder(folder)
        if isinstance(result, tuple) and folder in self._bucket_of:
            return result[0], self._bucket_of[folder]
        return result

    def ensure_folder(self, folder: str) -> str | None:
        """A first-level folder appeared: make sure its bucket exists (checked first, then created)."""
        result = self.folder_bucket(folder)
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

    def _ensure_bucket(self, folder: str, bucket_name: str, predicted: str) -> str:
        bucket_id, created = self.storage.ensure_bucket(bucket_name, self.config.keboola.stage)
        if created:
            log.info("created bucket %s for folder %s", bucket_id, folder, extra={"bucket": bucket_id})
        else:
            log.info("bucket %s for folder %s already exists", bucket_id, folder, extra={"bucket": bucket_id})
        self.ledger.record_bucket(bucket_id, folder)
        self._buckets.add(bucket_id)
        self._bucket_of[folder] = bucket_id
        return bucket_id

    def bucket_known(self, folder: str) -> bool:
        """Already created or checked (this run or recorded in the ledger): no Keboola call needed."""
        result = self.folder_bucket(folder)
        return not isinstance(result, tuple) or result[1] in self._buckets

    def folder_ignored(self, folder: str) -> bool:
        """Hidden, junk and `watch.ignore_patterns` folders are not synced (their files are not looked at)."""
        return self.layout.folder_ignored(folder)

    # -- files -> tables -----------------------------------------------------------------------------

    def needs_work(self, rel_path: str, fp: Fingerprint, record: FileRecord | None, now: float) -> bool:
        """Cheap test (no reading, no network) used by rescans: is there anything to do for this file?
        Besides the file's own change: a skip because of another file that is no longer there."""
        if self._first_look(rel_path, record, peek=True):
            return True
        if record is not None and record.depends and record.depends.startswith(RIVAL):
            rival = record.depends.removeprefix(RIVAL)
            if not (self.root / rival).exists():
                return True
        return needs_work(fp, record, now)

    def sync(self, rel_path: str) -> Outcome:
        target = self.target_for(rel_path)
        seen = self.observe(rel_path, target)
        record = self.ledger.get(rel_path) if isinstance(target, Target) else None
        if self._first_look(rel_path, record):
            seen = replace(seen, rejudge=True)
        decision = decide(rel_path, target, seen, record, time.time())
        action = decision.action
        if action is Action.SKIP:
            before = self.ledger.get(rel_path)  # `record` is None for a name the layout rejects
            return self._skip(rel_path, decision.table_id, decision.version, decision.message, before, decision.depends)
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

    def _first_look(self, rel_path: str, record: FileRecord | None, *, peek: bool = False) -> bool:
        """A skip about the table or the configuration (not owned, header refused), not yet judged again
        by this process: the table or config.yaml may have changed while the daemon was stopped."""
        if record is None or record.state != LedgerState.SKIPPED or record.depends != DEPENDS_TABLE:
            return False
        if rel_path in self._rejudged:
            return False
        if not peek:
            self._rejudged.add(rel_path)
        return True

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
            except (Abandoned, StorageError, HeaderRefused, ContentRefused, NotOwned) as exc:
                return self._on_error(rel_path, target.table_id, info.fingerprint, exc, record)
            if loaded.unchanged:
                return self._already_held(rel_path, info, loaded)
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
                spool_dir=self.spool_dir or cfg.upload.spool_dir,
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
        table_id = loaded.table_id
        self.ledger.record_synced(
            rel_path,
            table_id,
            info.fingerprint,
            info.sha256,
            columns,
            rows,
            header=info.header,
            table_import_date=loaded.table_import_date,
        )
        compressed = f", gzip {spool.size / 1e6:.1f} MB" if spool.gzipped else ""
        rate = info.size / 1e6 / max(seconds, 1e-6)
        status = Status.CREATED if loaded.created else Status.LOADED
        log.info(
            "%s %s -> %s: %s rows, %.1f MB%s, %.1f s, %.1f MB/s",
            status,
            rel_path,
            table_id,
            rows if rows is not None else "?",
            info.size / 1e6,
            compressed,
            seconds,
            rate,
            extra={
                "file": rel_path,
                "table": table_id,
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
            return Outcome(rel_path, Status.CHANGED, "changed during the load", table_id)
        return Outcome(rel_path, status, "", table_id)

    def _already_held(self, rel_path: str, info: CsvInfo, loaded: Loaded) -> Outcome:
        """No ledger memory, but the table's keboola-sync mark says it holds this very content (a ledger
        moved aside, a new machine): remember it, send nothing (issue 12 item 5)."""
        self.ledger.record_synced(
            rel_path,
            loaded.table_id,
            info.fingerprint,
            info.sha256,
            info.columns,
            loaded.outcome.rows,
            header=info.header,
        )
        log.info(
            "%s: table %s already holds this content (keboola-sync's mark); nothing loaded",
            rel_path,
            loaded.table_id,
            extra={"file": rel_path, "table": loaded.table_id, "outcome": "unchanged"},
        )
        return Outcome(rel_path, Status.UNCHANGED, "content unchanged", loaded.table_id)

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
            depends = DEPENDS_TABLE if rule.depends_on_table else None
            return self._skip(rel_path, table_id, remembered, message, before, depends)
        if rule.status is Status.FAILED:
            return self._fail(rel_path, table_id, remembered, message, before)
        if rule.status is Status.ABANDONED:
            log.warning("%s: %s; the next start finishes it", rel_path, exc, extra={"file": rel_path})
        return Outcome(rel_path, rule.status, message, table_id)

    def _skip(
        self,
        rel_path: str,
        table_id: str | None,
        fp: Fingerprint | None,
        message: str,
        before: FileRecord | None,
        depends: str | None = None,
    ) -> Outcome:
        """Invalid as it is: one WARNING line, then silence until the file (or the problem) changes.
        Judged against the row as this sync found it (`before`): the load itself marks the row pending on
        upload, so a refusal by Keboola would otherwise never look like the skip already said."""
        self.ledger.record_skipped(rel_path, table_id, fp, message, depends)
        if not skip_already_said(before, fp, message):
            log.warning("skipped %s", message, extra={"file": rel_path, "outcome": "skipped"})
        return Outcome(rel_path, Status.SKIPPED, message, table_id)

    def _fail(
        self, rel_path: str, table_id: str | None, fp: Fingerprint | None, message: str, before: FileRecord | None
    ) -> Outcome:
        """Keboola failed: one ERROR line when this version of the file starts failing; a retry that
        fails again is logged at DEBUG only (its message differs by a job id or a status code, so it
        is not compared)."""
        # Judged against the row as this sync found it: the load itself marks the row pending on upload.
        new = before is None or before.state != LedgerState.FAILED or before.seen != fp
        retry_in = retry_spacing(
            None if new or before is None else before.retry_seconds,
            self.config.retry.failed_retry_seconds,
            self.config.retry.failed_retry_max_seconds,
        )
        self.ledger.record_failed(rel_path, table_id, fp, message, time.time() + retry_in, retry_in)
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
        """Paths whose table was deleted, or loaded by someone else, in Keboola although the file did not
        change: they load again, so every table ends up equal to its file (issue 12 items 3 and 7). One
        list call; rows recorded after it started are not judged."""
        asked_at = time.time()
        remote = {t.table_id: t.last_import_date for t in self.storage.list_tables()}
        paths = []
        for record in self.ledger.all():
            if not judged_by_the_table(record) or not record.table_id:
                continue
            if (record.last_load_at or 0) >= asked_at or not (self.root / record.path).exists():
                continue
            if observe(self.root / record.path) != record.seen:
                continue  # changed as well: its load is on the way and will find out
            if record.table_id not in remote:
                log.warning(
                    "table %s was deleted in Keboola; loading %s again",
                    record.table_id,
                    record.path,
                    extra={"file": record.path, "table": record.table_id},
                )
                self.ledger.forget_table(record.table_id)
                paths.append(record.path)
            elif _loaded_by_someone_else(record, remote[record.table_id]):
                log.warning(
                    "table %s was loaded in Keboola by something other than keboola-sync (last import %s); "
                    "loading %s again so the table equals the file",
                    record.table_id,
                    remote[record.table_id],
                    record.path,
                    extra={"file": record.path, "table": record.table_id},
                )
                self.ledger.forget_content(record.path)
                paths.append(record.path)
        return paths

    # -- start-up ----------------------------------------------------------------------------------

    def resolve_in_flight(self) -> None:
        """Loads that were in flight when the daemon last stopped: ask Keboola how each job ended."""
        self.loader.resolve_in_flight()


_JOB_NUMBER = re.compile(r"\bjob \d+ failed\b")


def skip_already_said(before: FileRecord | None, fp: Fingerprint | None, message: str) -> bool:
    """This version of the file was already skipped with this verdict, so its line was logged. A skip
    being judged again (a first look in this process, a changed setting: state pending, its version and
    verdict kept) counts too. Keboola's refusal of the same content differs only by the job's number."""
    if before is None or before.state not in (LedgerState.SKIPPED, LedgerState.PENDING) or before.seen != fp:
        return False
    return before.error is not None and _JOB_NUMBER.sub("job failed", before.error) == _JOB_NUMBER.sub(
        "job failed", message
    )


def _loaded_by_someone_else(record: FileRecord, import_date: datetime | None) -> bool:
    """Keboola's lastImportDate moved since our last load (Keboola's clock against Keboola's clock)."""
    ours = parse_date(record.table_import_date)
    return record.state == LedgerState.SYNCED and ours is not None and import_date is not None and import_date != ours


def judged_by_the_table(record: FileRecord) -> bool:
    """A row whose state is about the remote table: it holds our load, or a skip refused by that table
    (header or content). When the table is dropped in Keboola, the file is loaded again (issue 12 item 3)."""
    return record.state == LedgerState.SYNCED or (
        record.state == LedgerState.SKIPPED and record.depends == DEPENDS_TABLE
    )


_STATUS_OF_ACTION = {
    Action.IGNORE: Status.IGNORED,
    Action.GONE: Status.GONE,
    Action.NOTHING: Status.UNCHANGED,
    Action.WAIT: Status.WAITING,
}
