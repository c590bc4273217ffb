"""Decide and perform the sync of one file: the heart of the daemon.

`SyncService.sync(rel_path)` takes a path that has been stable for `watch.stable_seconds` and makes its
table equal to the file, or records why not. Every outcome ends in exactly one log line and one ledger
row, so `status` and the log always agree. The scheduler guarantees one call per table at a time.

What to do is decided by `decide()` (decide.py), a pure function of what was observed of the file, its ledger row
and the clock; `SyncService` only gathers the observation and carries the decision out. The remote half
of a load lives in `load.py`; tables changed in Keboola are found by `drift.py`.

Failure classes (architecture §4), all in one table (`ERROR_OUTCOMES`): a bad file is skipped until it
changes (logged once); a failing service is retried with backoff inside `storage`, then the file is
marked failed and tried again after `retry.failed_retry_seconds` (logged once per failure, not on every
retry); a job error that says the content is wrong is treated like a bad file.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from .buckets import FolderBuckets
from .config import Config
from .csvfile import CsvInfo, Spool, inspect_and_spool
from .decide import decide, needs_work, retry_spacing, skip_already_said
from .drift import tables_dropped_remotely
from .errors import FileChanged, InvalidFile, SpoolError
from .fileid import Fingerprint, fingerprint, is_inside, observe
from .header_check import HeaderRefused
from .layout import Ignored, Layout, Rejected, Target
from .live import FollowsLiveConfig, LiveConfig
from .load import ContentRefused, Loaded, Loader
from .outcome import Action, Decision, Observation, Outcome, Status, error_outcome
from .overlap import Overlap
from .ownership import NotOwned
from .state import DEPENDS_TABLE, RIVAL, FileRecord, Ledger, LedgerState
from .storage import Abandoned, Storage, StorageError

__all__ = [
    "Action",
    "Decision",
    "Observation",
    "Outcome",
    "Status",
    "SyncService",
]

log = logging.getLogger("keboola_sync.sync")


class SyncService(FollowsLiveConfig):
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
        self.buckets = FolderBuckets(self.live, storage, ledger)  # folders -> buckets (buckets.py)
        self._rejudged: set[str] = set()  # table-dependent skips already judged again in this process
        self.loader = Loader(self.live, storage, ledger, self.buckets.known, self.buckets.ensure_folder)
        # This process's own spool folder (a locked sub-directory of upload.spool_dir, see spool.py).
        self.spool_dir = spool_dir

    # -- classification ------------------------------------------------------------------------------

    def target_for(self, rel_path: str) -> Target | Ignored | Rejected:
        target = self.layout.classify(rel_path)
        return self.buckets.in_bucket(target) if isinstance(target, Target) else target

    def bucket_known(self, folder: str) -> bool:
        """Already created or checked: no Keboola call needed (see `buckets`)."""
        return self.buckets.bucket_known(folder)

    def ensure_folder(self, folder: str) -> str | None:
        """A first-level folder appeared: make sure its bucket exists (see `buckets`)."""
        return self.buckets.ensure_folder(folder)

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
        log.debug("%s: pass started", rel_path)
        try:
            info, spool, fresh_file_id = self._pass(rel_path, path, target, fp, record)
        except (InvalidFile, SpoolError, FileChanged, OSError) as exc:
            return self._on_error(rel_path, target.table_id, fp, exc, record)
        log.debug("%s: pass done (%d bytes, spool %d bytes)", rel_path, info.size, spool.size)
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
        log.debug("%s: ledger written", rel_path)
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
        """Paths to load again because their table changed in Keboola (see `drift`)."""
        return tables_dropped_remotely(self.storage, self.ledger, self.root)

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
