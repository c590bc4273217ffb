"""What is synced and what is not: the folder as it is now, joined with the ledger. No Keboola call,
no writes: safe to run beside the daemon, and answers even when Keboola is down."""

from __future__ import annotations

import os
from typing import Any

from .config import Config
from .fileid import Fingerprint, is_folder
from .layout import Ignored, Layout, Rejected, Target
from .state import Ledger


def _csv_paths(config: Config) -> list[str]:
    root = config.watch.path
    paths: list[str] = []
    try:
        folders = sorted(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
    except OSError:
        return paths
    for folder in folders:
        try:
            # a folder, or a link to one, is never a file row (whatever its name)
            names = sorted(e.name for e in os.scandir(root / folder) if not is_folder(e))
        except OSError:
            continue
        paths.extend(f"{folder}/{name}" for name in names)
    return paths


def collect(config: Config) -> list[dict[str, Any]]:
    """One row per CSV that would be synced (or is refused), in path order."""
    ledger = Ledger(config.state.path, readonly=True)
    try:
        records = {r.path: r for r in ledger.all()}
        bucket_of = ledger.bucket_of_folder()
    finally:
        ledger.close()
    rows = []
    layout = Layout.from_config(config)
    for rel_path in _csv_paths(config):
        target = layout.classify(rel_path)
        if isinstance(target, Ignored):
            continue
        if isinstance(target, Target) and target.folder in bucket_of:
            target = target.in_bucket(bucket_of[target.folder])  # the id Keboola gave the folder's bucket
        record = records.get(rel_path)
        row: dict[str, Any] = {
            "file": rel_path,
            "folder": rel_path.split("/", 1)[0],
            "table_id": None if isinstance(target, Rejected) else target.table_id,
            "state": "pending",
            "last_load_at": None,
            "rows": None,
            "error": None,
        }
        if isinstance(target, Rejected):
            row.update(state="skipped", error=f"{target.problem}. {target.fix}")
        if record is not None:
            row.update(last_load_at=record.last_load_at, rows=record.rows, error=record.error)
            try:
                st = os.stat(config.watch.path / rel_path)
                current = Fingerprint.of(st)
            except OSError:
                current = None
            if record.job_id is not None:
                row["state"] = "pending"
            elif record.seen is None or record.seen == current or current is None:
                # (no fingerprint: judged without reading it, e.g. unreadable; the state stands as recorded)
                row["state"] = record.state
            if row["state"] == "synced":
                row["error"] = None
        rows.append(row)
    return rows
