"""The remote half of a load: make one Keboola table equal to a file already inspected and spooled.

`Loader.load` ensures the bucket, compares the header with the table, uploads (or reuses a kept upload),
starts a create or a full load, waits for the job and records each step in the ledger, so a crash at any
moment is resolved at the next start by asking Keboola (`resolve_in_flight`), never by sending blindly.

A failed job is handled by its kind (`JobFailed.kind`, §7.2 codes), one handler per kind in `_ON_JOB_ERROR`:
the uploaded file is gone (upload again), the table or bucket vanished (create it again), Keboola had an
internal error (import again from the same upload), or the content is wrong (`ContentRefused`: the caller
skips the file until it changes). A refused header raises `HeaderRefused` before anything remote changes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from .config import Config
from .csvfile import CsvInfo, Spool
from .errors import KeboolaSyncError
from .header_check import header_refusal, header_refused
from .inflight import resolve_in_flight
from .layout import Target
from .live import LiveConfig
from .ownership import NotOwned, Plan, holds, loaded_by_us, record_lost
from .state import FileRecord, Ledger
from .storage import (
    MISSING_TARGET_CODES,
    Abandoned,
    JobFailed,
    JobOutcome,
    NotFound,
    RemoteTable,
    Storage,
    StorageError,
)
from .storage import metadata as marks

log = logging.getLogger("keboola_sync.sync")

# How often one load may go around "upload again / create again / import again" before it fails.
MAX_LOAD_ROUNDS = 4


class ContentRefused(KeboolaSyncError):
    """Keboola's job refused the file's content; the message carries Keboola's words and our guess."""


class CreateRefused(ContentRefused):
    """Keboola refused the content of a table being created from the file. No table was there, so the
    verdict is about the file alone: a table missing from Keboola later is no news and no reason to load
    the unchanged file again (only a refusal by an existing table depends on that table)."""


@dataclass(frozen=True)
class Loaded:
    outcome: JobOutcome
    created: bool  # the table was created from the file (else: a full load of an existing table)
    table_id: str  # the table loaded: the target's, or the same name in another case that already exists
    table_import_date: str | None = None  # Keboola's lastImportDate right after this load
    unchanged: bool = False  # nothing was sent: the table's mark says it holds this content


@dataclass
class _Round:
    """What one load carries from round to round."""

    rel_path: str
    target: Target
    info: CsvInfo
    file_id: int | None
    kept: int | None  # an upload kept from an earlier run (an import of it may already have been sent)
    number: int = 0
    remote_rows: int | None = None  # the existing table's row count, when there is one
    creating: bool = False  # this round creates the table (no table was found)


class Loader:
    def __init__(
        self,
        config: Config | LiveConfig,
        storage: Storage,
        ledger: Ledger,
        buckets: set[str],
        ensure_folder: Callable[[str], str | None],
    ) -> None:
        self.live = config if isinstance(config, LiveConfig) else LiveConfig(config)
        self.storage = storage
        self.ledger = ledger
        self._buckets = buckets  # shared with SyncService: the buckets known to exist
        self._ensure_folder = ensure_folder

    @property
    def config(self) -> Config:
        """The configuration in force now (a reload may change csv.on_header_change between loads)."""
        return self.live.config

    def header_refused(self, table: tuple[str, ...], file: tuple[str, ...]) -> bool:
        return header_refused(table, file, self.config.csv.on_header_change)

    def load(
        self,
        rel_path: str,
        target: Target,
        info: CsvInfo,
        spool: Spool,
        record: FileRecord | None,
        fresh_file_id: int | None,
    ) -> Loaded:
        """Bucket, ownership and header checks, upload (or reuse of a kept upload), job, wait, mark; another
        round when a job error says so. Raises HeaderRefused, NotOwned, ContentRefused or the last
        StorageError. Returns without loading when the table's mark says it already holds this content."""
        # A kept upload of the same content (a crash or failure after an earlier upload) wins over a fresh
        # one: an import of it may already have been sent, and only the kept id can be looked up.
        kept = self._reusable_file_id(record, info)
        state = _Round(rel_path, target, info, kept or fresh_file_id, kept)
        last_error: StorageError | None = None
        for number in range(MAX_LOAD_ROUNDS):
            state.number = number
            plan = self._plan(state, record)
            log.debug("%s: table looked up, plan %s", rel_path, plan.value)
            if plan is Plan.HOLDS:
                return Loaded(JobOutcome(0, {}, state.remote_rows, ()), False, state.target.table_id, unchanged=True)
            created = state.creating = plan is Plan.CREATE
            try:
                job_id = self._start(state, spool, created)
            except NotFound as exc:
                if exc.code not in MISSING_TARGET_CODES:
                    raise
                last_error = exc
                self._target_vanished(rel_path, state.target, exc)
                continue
            self.ledger.record_job_started(rel_path, job_id)
            try:
                kind = "create" if created else "import"
                outcome = self.storage.wait_for_job(
                    job_id, what=f"{kind} {state.target.table_id}", kind=kind, size=spool.size
                )
            except JobFailed as exc:
                self.ledger.clear_in_flight(rel_path)
                last_error = exc
                _ON_JOB_ERROR[exc.kind](self, state, exc)
                continue
            outcome, imported_at = self._after_load(outcome, state.target)
            log.debug("%s: table read after the load", rel_path)
            self._mark(state, imported_at, first=created or plan in (Plan.ADOPT, Plan.RESUME))
            log.debug("%s: mark written", rel_path)
            return Loaded(outcome, created, state.target.table_id, table_import_date=imported_at)
        assert last_error is not None
        raise last_error

    def _plan(self, state: _Round, record: FileRecord | None) -> Plan:
        """Create, load, adopt, or nothing (the table already holds this content). Raises HeaderRefused or
        NotOwned before anything remote changes."""
        if state.target.bucket_id not in self._buckets:
            actual = self._ensure_folder(state.target.folder)
            if actual is not None:  # the id Keboola has for the folder's bucket wins over our prediction
                state.target = state.target.in_bucket(actual)
        if state.number == 0:
            state.target, remote = self._locate(state.target)
        else:
            remote = self.storage.get_table(state.target.table_id)
        if remote is None:
            self._say_recreated(state, record)
            return Plan.CREATE
        state.remote_rows = remote.rows_count
        plan = self._ownership(state, record, remote)
        if plan is Plan.LOAD and record_lost(record) and holds(remote, state.info.sha256):
            return Plan.HOLDS  # a lost ledger: the table's mark says it holds this very content
        self._check_header(state, record, remote)
        return plan

    def _locate(self, target: Target) -> tuple[Target, RemoteTable | None]:
        """The table as Keboola names it. Table names are case-insensitive in Keboola (§12), but whether a
        lookup by id is, is not known: when `in.c-x.Orders` is not found and the ledger knows the table as
        `in.c-x.orders`, that is the same table, loaded instead of a create that must fail. (A table of
        another case made by someone else is found when Keboola refuses the create: `_name_taken`.)"""
        remote = self.storage.get_table(target.table_id)
        if remote is not None or not self._ledger_knows_another_case(target):
            return target, remote
        moved = self._case_variant(target)
        return (target, None) if moved is None else (moved, self.storage.get_table(moved.table_id))

    def _ledger_knows_another_case(self, target: Target) -> bool:
        owner = self.ledger.owner_of_table(target.table_id)
        record = self.ledger.get(owner) if owner else None
        return record is not None and record.table_id is not None and record.table_id != target.table_id

    def _case_variant(self, target: Target) -> Target | None:
        """The same table under another letter case in the bucket (one listing), or None."""
        wanted = target.table_id.lower()
        try:
            listed = self.storage.list_tables(target.bucket_id)
        except NotFound:
            return None
        same = sorted(t.table_id for t in listed if t.table_id.lower() == wanted and t.table_id != target.table_id)
        return replace(target, table_id=same[0], table_name=same[0].rsplit(".", 1)[-1]) if same else None

    def _say_recreated(self, state: _Round, record: FileRecord | None) -> None:
        if record is not None and record.columns is not None:
            log.warning(
                "table %s no longer exists in Keboola; creating it again from %s",
                state.target.table_id,
                state.rel_path,
                extra={"file": state.rel_path, "table": state.target.table_id},
            )

    def _ownership(self, state: _Round, record: FileRecord | None, remote: RemoteTable) -> Plan:
        """Ours (marked, or loaded by us per the ledger): load. Someone else's: skip, or adopt when
        `mapping.existing_tables: adopt` says so. Never overwrite data the daemon does not own."""
        if marks.OWNER_KEY in remote.marks or loaded_by_us(record, remote):
            return Plan.LOAD
        if self._sent_by_us(record, remote):
            return Plan.RESUME
        table_id = remote.table_id
        if self.config.mapping.existing_tables != "adopt":
            raise NotOwned(
                f"{state.rel_path}: table {table_id} already exists in Keboola and was not created by "
                "keboola-sync, so it is not overwritten; nothing was loaded. To let keboola-sync replace its "
                "content with this file, set mapping.existing_tables: adopt; or rename the file (or its "
                "folder) to load it into a new table"
            )
        log.warning(
            "adopting table %s for %s (mapping.existing_tables: adopt): its content is replaced by the file",
            table_id,
            state.rel_path,
            extra={"file": state.rel_path, "table": table_id},
        )
        return Plan.ADOPT

    def _sent_by_us(self, record: FileRecord | None, remote: RemoteTable) -> bool:
        """A job that used the upload this file's ledger row keeps went to this table, and its answer was
        lost (a kill -9 after the create request, before the job id or the mark was written; the file may
        have changed since): the table is ours although neither its mark nor the ledger says so yet. Only
        this daemon knows that file id. One job listing, only for a table without a mark."""
        if record is None or record.file_id is None:
            return False
        return self.storage.find_job_for_file(record.file_id, remote.table_id) is not None

    def _check_header(self, state: _Round, record: FileRecord | None, remote: RemoteTable) -> None:
        rel_path, target, info = state.rel_path, state.target, state.info
        if self._same_header_as_last_load(record, target, info):
            return  # an unchanged header never blocks a load (nothing predicted: §12, locale)
        refusal = header_refusal(
            rel_path, target.table_id, remote.columns, info.columns, self.config.csv.on_header_change
        )
        if refusal is not None:
            raise refusal

    def _mark(self, state: _Round, imported_at: str | None, *, first: bool) -> None:
        """Write the table's keboola-sync metadata after a load. A failure costs only the lost-ledger
        shortcut and the ownership proof (the ledger still has both): a WARNING, never a failed load."""
        values = {
            marks.SHA256_KEY: state.info.sha256,
            marks.HEADER_KEY: json.dumps(list(state.info.header)),
            marks.SOURCE_KEY: state.rel_path,
            marks.IMPORTED_AT_KEY: imported_at or "",
        }
        if first:
            values[marks.OWNER_KEY] = marks.OWNER_VALUE
        try:
            self.storage.set_sync_metadata(state.target.table_id, values)
        except StorageError as exc:
            log.warning(
                "could not write keboola-sync's metadata on table %s: %s; ownership is kept in the ledger",
                state.target.table_id,
                exc,
                extra={"file": state.rel_path, "table": state.target.table_id},
            )

    @staticmethod
    def _same_header_as_last_load(record: FileRecord | None, target: Target, info: CsvInfo) -> bool:
        """The file's header is the one this table was last loaded from by us. Then the load goes ahead
        whatever our prediction of Keboola's column names says: how Keboola names letters outside
        Windows-1250 depends on its server's locale (§12), and a table we loaded from this very header
        is proof enough. Only a changed header (or a table we never loaded) is compared by prediction."""
        return (
            record is not None
            and record.header is not None
            and record.table_id == target.table_id
            and record.header == info.header
        )

    def _start(self, state: _Round, spool: Spool, created: bool) -> int:
        """Upload if needed, record the upload, then find the job a crash left behind or start one."""
        target, info = state.target, state.info
        job_id = None
        if state.file_id is None:
            state.file_id = self.storage.upload(spool.path, label=state.rel_path)
        elif state.number == 0 and state.kept is not None:
            # An upload kept from an earlier run: an import for it may have been sent just before a crash.
            job_id = self.storage.find_job_for_file(state.file_id, target.table_id)
        self.ledger.record_uploaded(
            state.rel_path, target.table_id, info.fingerprint, info.sha256, info.columns, state.file_id
        )
        log.debug("%s: upload recorded in the ledger", state.rel_path)
        if job_id is not None:
            return job_id
        if created:
            return self.storage.start_create_table(target.bucket_id, target.table_name, state.file_id, info.dialect)
        return self.storage.start_full_load(target.table_id, state.file_id, info.dialect)

    def _after_load(self, outcome: JobOutcome, target: Target) -> tuple[JobOutcome, str | None]:
        """The table as the load left it: rows and columns when the job did not say, and Keboola's
        `lastImportDate`, kept to notice a later load by someone else (issue 12 item 7). A create job's
        `results` is the new table itself (§4.2, §6.1), so its lastImportDate is read from there without
        another request; an import's results carry no date (§4.5), and a stack whose create results lack
        one (or name another table) is asked with GET tables/{id}."""
        table = outcome.results
        imported_at = table.get("lastImportDate")
        if (
            outcome.rows is not None
            and isinstance(imported_at, str)
            and imported_at
            and str(table.get("id", "")).lower() == target.table_id.lower()
        ):
            return outcome, imported_at
        after = self.storage.get_table(target.table_id)
        if after is None:
            return outcome, None
        if outcome.rows is None:
            outcome = JobOutcome(outcome.job_id, outcome.results, after.rows_count, after.columns)
        return outcome, after.last_import_date

    # -- what a failed job's kind asks for (one handler per JobFailed.kind) -----------------------

    def _upload_again(self, state: _Round, exc: JobFailed) -> None:
        log.warning("%s: %s; uploading again", state.rel_path, exc, extra={"file": state.rel_path})
        self.ledger.forget_file_id(state.rel_path)
        state.file_id = None

    def _create_again(self, state: _Round, exc: JobFailed) -> None:
        self._target_vanished(state.rel_path, state.target, exc)

    def _import_again(self, state: _Round, exc: JobFailed) -> None:
        log.warning(
            "%s: %s; retrying the import from the uploaded file", state.rel_path, exc, extra={"file": state.rel_path}
        )
        pause = min(2.0 * (1 + state.number), self.config.retry.max_backoff_seconds)
        if self.storage.abandon.wait(pause):
            raise Abandoned("shutdown while waiting to retry the import") from exc

    def _refuse_content(self, state: _Round, exc: JobFailed) -> None:
        # One line: Keboola's refusal, with what our inspection suspected as the likely cause.
        warnings = state.info.warnings
        cause = f"; probably because {'; '.join(warnings)}" if warnings else ""
        refused = CreateRefused if state.creating else ContentRefused
        raise refused(
            f"{state.rel_path}: Keboola refused the file: {exc} ({exc.code}){cause}. Fix the "
            "file; it is loaded again when it changes"
        ) from exc

    def _name_taken(self, state: _Round, exc: JobFailed) -> None:
        """Keboola refused the create: a table of this name in another letter case, or with this display
        name, exists (§12). The same name in another case is the same table: load into it (its owner is
        checked like any other table's). Anything else needs a rename: skipped, never retried."""
        moved = self._case_variant(state.target)
        if moved is None:  # no table of this id was there: the verdict depends on the file's name alone
            raise CreateRefused(
                f"{state.rel_path}: Keboola refuses to create table {state.target.table_id}: {exc}. Another "
                "table of the bucket has this name in another letter case or as its display name. Rename "
                "the file"
            ) from exc
        state.target = moved

    def _fail(self, state: _Round, exc: JobFailed) -> None:
        """A job error Keboola gives no known remedy for: the load fails with Keboola's own message and is
        tried again later at growing spacing (never an import every round)."""
        raise exc

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

    # -- start-up ----------------------------------------------------------------------------------

    def resolve_in_flight(self) -> None:
        """Settle the loads left in flight by the last run (see `inflight`)."""
        resolve_in_flight(self.storage, self.ledger)


_ON_JOB_ERROR: dict[str, Callable[[Loader, _Round, JobFailed], None]] = {
    "file": Loader._upload_again,
    "missing": Loader._create_again,
    "transient": Loader._import_again,
    "content": Loader._refuse_content,
    "conflict": Loader._name_taken,
    "failed": Loader._fail,
}
