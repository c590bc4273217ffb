"""`sync --once --dry-run` (also `plan`): what one sync would do, file by file, changing nothing.

Why a room of its own and not a flag threaded through the sync: a dry run must be unable to write, not
merely asked not to. It opens the ledger read-only, runs the local checks with `csvfile.inspect` (the
streaming pass without a spool: nothing is written anywhere), and calls Keboola only to read: the token
(tokens/verify, §1.3), a bucket's detail (§3.2) and a table's detail (§4.1). What to do with a file is
decided by the daemon's own `sync.decide`; the header check and the skip messages are the load's own, so
the dry run says what the daemon would say, in the same words.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from .config import Config
from .csvfile import CsvInfo, inspect
from .errors import FileChanged, InvalidFile
from .layout import Ignored, Layout, Rejected, Target
from .load import header_refusal
from .outcome import Action, Decision, Status, error_outcome
from .state import FileRecord, Ledger, LedgerState
from .storage import RemoteTable, Storage
from .sync import SyncService, decide


class Would(StrEnum):
    """What a sync would do; the first four change nothing that is bad, the last two make exit code 1."""

    CREATE_BUCKET = "create bucket"
    CREATE_TABLE = "create table"
    FULL_LOAD = "full load"
    NOTHING = "nothing"
    WAIT = "wait"  # changing right now: loaded once it is stable
    SKIP = "skip"
    FAIL = "failed"  # failed earlier, the retry is not due yet


BAD = frozenset({Would.SKIP, Would.FAIL})


@dataclass(frozen=True)
class Step:
    would: Would
    subject: str  # the file (or folder) it is about
    target: str  # the bucket or table id, or ""
    detail: str  # why; for a skip, the very line the daemon would log
    note: str = ""  # said after the subject, e.g. that a skip is old news

    def lines(self) -> list[str]:
        head = f"{self.would:<14}{self.subject}" + (f" -> {self.target}" if self.target else "")
        head += f" ({self.note})" if self.note else ""
        if self.would in BAD:
            return [head, f"{'':<14}{self.detail}"]
        return [f"{head}: {self.detail}" if self.detail else head]


class Planner:
    """Walks the watched folder as a rescan does and asks, for each CSV, what `sync` would do."""

    def __init__(self, config: Config, storage: Storage, ledger: Ledger, *, bucket_prefix: str = "c-") -> None:
        self.config = config
        self.storage = storage
        self.ledger = ledger
        # SyncService here only observes files and reads the ledger; nothing of it that writes is called.
        # `bucket_prefix`: as the daemon predicts it from the project's features ("" with
        # disable-legacy-bucket-prefix, §12); the bucket ids the ledger keeps win, as in a sync.
        layout = Layout.from_config(config, bucket_prefix=bucket_prefix)
        self.service = SyncService(config, storage, ledger, layout)
        self.root = config.watch.path
        self._buckets: dict[str, bool] = {}  # bucket id -> exists in Keboola

    def plan(self) -> Iterator[Step]:
        for folder in sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)):
            if not self.service.folder_ignored(folder):
                yield from self._folder(folder)

    def _folder(self, folder: str) -> Iterator[Step]:
        result = self.service.folder_bucket(folder)
        if isinstance(result, Ignored):
            return
        if isinstance(result, Rejected):
            yield Step(Would.SKIP, folder + "/", "", f"folder {folder} is not synced: {result.problem}. {result.fix}")
            return
        _, bucket_id = result
        if not self._bucket_exists(bucket_id):
            yield Step(Would.CREATE_BUCKET, folder + "/", bucket_id, "a new folder")
        try:
            names = sorted(e.name for e in os.scandir(self.root / folder) if not e.is_dir(follow_symlinks=False))
        except OSError as exc:
            problem = f"folder {folder} cannot be read ({exc.strerror or exc}); its files are not synced"
            yield Step(Would.SKIP, folder + "/", "", problem)
            return
        for name in names:
            step = self.file(f"{folder}/{name}")
            if step is not None:
                yield step

    def _bucket_exists(self, bucket_id: str) -> bool:
        if bucket_id not in self._buckets:
            self._buckets[bucket_id] = self.storage.bucket_exists(bucket_id)
        return self._buckets[bucket_id]

    def _table(self, target: Target) -> RemoteTable | None:
        if not self._bucket_exists(target.bucket_id):
            return None
        return self.storage.get_table(target.table_id)

    def file(self, rel_path: str) -> Step | None:
        """What a sync of this file would do (None: not a file the daemon syncs)."""
        target = self.service.target_for(rel_path)
        if isinstance(target, Ignored):
            return None
        record = self.ledger.get(rel_path) if isinstance(target, Target) else None
        decision = decide(rel_path, target, self.service.observe(rel_path, target), record, time.time())
        table_id = decision.table_id or ""
        if decision.action is Action.SKIP:
            return Step(Would.SKIP, rel_path, table_id, f"skipped {decision.message}")
        if decision.action is Action.WAIT and record is not None:
            due = (record.next_retry_at or 0) - time.time()
            detail = f"failed {rel_path}: {record.error}; trying again in {max(due, 0):.0f} s or when the file changes"
            return Step(Would.FAIL, rel_path, table_id, detail)
        if not isinstance(target, Target):
            return None
        if decision.action is Action.NOTHING and record is not None:
            return self._unchanged(rel_path, target, record)
        if decision.action is not Action.LOAD:
            return None
        return self._load(rel_path, target, decision, record)

    def _unchanged(self, rel_path: str, target: Target, record: FileRecord) -> Step:
        if record.state == LedgerState.SKIPPED:
            note = "unchanged since it was skipped; the daemon logged this once"
            return Step(Would.SKIP, rel_path, target.table_id, f"skipped {record.error}", note)
        if self._table(target) is None:
            # The daemon's table check notices a table deleted behind its back and loads the file again.
            return Step(
                Would.CREATE_TABLE, rel_path, target.table_id, "Keboola's table is missing (deleted in Keboola)"
            )
        rows = f", rows: {record.rows}" if record.rows is not None else ""
        return Step(Would.NOTHING, rel_path, target.table_id, f"in sync{rows}")

    def _load(self, rel_path: str, target: Target, decision: Decision, record: FileRecord | None) -> Step:
        try:
            info = inspect(
                self.root / rel_path,
                sniff_bytes=self.config.csv.sniff_bytes,
                delimiters=self.config.csv.delimiters,
                display_path=rel_path,
            )
        except FileChanged:
            return Step(Would.WAIT, rel_path, target.table_id, "it is changing right now; loaded once it is stable")
        except (InvalidFile, OSError) as exc:
            rule = error_outcome(exc)
            message = rule.message(rel_path, exc) if rule is not None else str(exc)
            if rule is not None and rule.status is Status.GONE:
                return Step(Would.NOTHING, rel_path, target.table_id, "deleted meanwhile")
            return Step(Would.SKIP, rel_path, target.table_id, f"skipped {message}")
        if record is not None and record.state == LedgerState.SYNCED and record.sha256 == info.sha256:
            return Step(Would.NOTHING, rel_path, target.table_id, "touched, but the content is what Keboola holds")
        table = self._table(target)
        notes = "".join(f"; note: {w}" for w in info.warnings)
        if table is None:
            why = _reason(record, decision) if record is not None else "a new file"
            if record is not None and record.last_load_at and "deleted" not in why:
                why += "; Keboola's table is missing"
            return Step(Would.CREATE_TABLE, rel_path, target.table_id, f"{why}, {_size(info)}{notes}")
        refusal = header_refusal(
            rel_path, target.table_id, table.columns, info.columns, self.config.csv.on_header_change
        )
        if refusal is not None:
            return Step(Would.SKIP, rel_path, target.table_id, f"skipped {refusal}")
        why = _reason(record, decision) if record is not None else "a new file; the table exists in Keboola"
        return Step(Would.FULL_LOAD, rel_path, target.table_id, f"{why}, {_size(info)}{notes}")


def _reason(record: FileRecord, decision: Decision) -> str:
    if record.in_flight:
        return "a load was interrupted (the daemon first asks Keboola how its job ended)"
    if record.state == LedgerState.FAILED:
        return "failed earlier and its retry is due"
    if record.state == LedgerState.PENDING and record.seen is None and record.last_load_at:
        return "Keboola's table differs: it was deleted in Keboola"
    if record.seen is not None and decision.version != record.seen:
        return "changed since the last load"
    return "not loaded yet"


def _size(info: CsvInfo) -> str:
    size = f"{info.size / 1e6:.1f} MB" if info.size >= 100_000 else f"{info.size} bytes"
    return f"columns: {len(info.columns)}, {size}"


def summary(steps: list[Step]) -> str:
    counts = Counter(step.would for step in steps)
    parts = [f"{counts[w]} {w}" for w in Would if counts[w]]
    return "dry run: " + (", ".join(parts) if parts else "no CSV files") + "; nothing was changed"


def exit_code(steps: list[Step]) -> int:
    """As `sync --once`: 1 when any file would be skipped or stays failed."""
    return 1 if any(step.would in BAD and not step.subject.endswith("/") for step in steps) else 0
