"""What is synced and what is not: the folder as it is now, joined with the ledger, and what the daemon
on this ledger is doing (its heartbeat). No Keboola call, no writes: safe to run beside the daemon, and
answers even when Keboola is down."""

from __future__ import annotations

import json
import os
import textwrap
import time
from typing import Any

from .config import Config
from .fileid import Fingerprint, is_folder
from .layout import Ignored, Layout, Rejected, Target
from .logs import printable
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
            "retry_at": None,
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
            if row["state"] == "failed":
                row["retry_at"] = record.next_retry_at
        rows.append(row)
    return rows


def daemon_state(config: Config, now: float | None = None) -> dict[str, Any]:
    """What the heartbeat file says about a daemon on this ledger: running (a fresh heartbeat that does
    not say it stopped), its pid, how old the heartbeat is, and what it loads now. Judged by the
    heartbeat's age, not by the pid: `status` may run in another container, where the pid means nothing."""
    now = time.time() if now is None else now
    path = config.daemon.health_file
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        reason = "no heartbeat file" if isinstance(exc, FileNotFoundError) else f"unreadable heartbeat ({exc})"
        return {"running": False, "pid": None, "heartbeat_age_seconds": None, "why": f"{reason} at {path}", "now": []}
    age = max(0.0, now - float(data.get("heartbeat_at") or 0))
    stopped = bool(data.get("stopped"))
    running = not stopped and age <= config.daemon.health_max_age_seconds
    if running:
        why = f"heartbeat {age:.0f} s ago"
    elif stopped:
        why = f"stopped {_ago(age)}"
    else:
        why = f"last heartbeat {_ago(age)} (limit {config.daemon.health_max_age_seconds:.0f} s): it died or hangs"
    last_ok = data.get("last_keboola_ok_at")
    return {
        "running": running,
        "pid": data.get("pid"),
        "heartbeat_age_seconds": round(age, 1),
        "why": why,
        "paused": data.get("paused") if running else None,
        "queue": data.get("pending") if running else None,
        "keboola_answered_seconds_ago": round(now - float(last_ok), 1) if running and last_ok else None,
        "now": list(data.get("loading") or []) if running else [],
    }


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def describe_daemon(daemon: dict[str, Any]) -> list[str]:
    """The lines above the table: is a daemon running on this ledger, and what is it doing now."""
    if not daemon["running"]:
        return [f"daemon: not running ({daemon['why']})"]
    line = f"daemon: running (pid {daemon['pid']}, {daemon['why']})"
    if daemon.get("keboola_answered_seconds_ago") is not None:
        line += f", Keboola answered {daemon['keboola_answered_seconds_ago']:.0f} s ago"
    lines = [line]
    if daemon.get("paused"):
        lines.append(f"paused: {daemon['paused']}")
    jobs = daemon.get("now") or []
    lines.append("now: " + ("; ".join(describe_load(job) for job in jobs) if jobs else "idle"))
    return lines


def describe_load(job: dict[str, Any]) -> str:
    """One load in progress: `sales/big.csv uploading 45% of 120.0 MB, 12.3 MB/s, ETA 8 s`."""
    phase = {"importing": "importing (Keboola's job)"}.get(str(job.get("phase")), str(job.get("phase")))
    parts = [f"{job.get('file')} {phase}"]
    total, done = job.get("total") or 0, job.get("bytes") or 0
    if total and job.get("phase") == "uploading":
        parts[0] += f" {100 * done // max(total, 1)}% of {total / 1e6:.1f} MB"
    if job.get("rate"):
        parts.append(f"{job['rate'] / 1e6:.1f} MB/s")
    if job.get("eta") is not None:
        parts.append(f"ETA {job['eta']:.0f} s")
    elif job.get("seconds") is not None:
        parts.append(f"{job['seconds']:.0f} s")
    return ", ".join(parts)


def render_table(rows: list[dict[str, Any]], width: int, now: float | None = None) -> list[str]:
    """The status table; the last column (the full error with its fix) wraps under itself, never cut."""
    now = time.time() if now is None else now
    headers = ("FILE", "TABLE", "STATE", "LAST LOAD", "ROWS", "ERROR")
    table = [headers] + [
        (  # printable: one row per file, whatever its name holds (newlines, terminal escapes)
            printable(r["file"]),
            r["table_id"] or "-",
            _state_cell(r, now),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["last_load_at"])) if r["last_load_at"] else "-",
            str(r["rows"]) if r["rows"] is not None else "-",
            printable(r["error"] or ""),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    indent = sum(widths) + 2 * len(widths)
    # The error wraps in its column when at least 40 characters are left of the terminal; else it goes
    # under its row, indented, across the terminal's width.
    beside = width - indent >= MIN_ERROR_WIDTH
    lines = []
    for row in table:
        head = "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)) + "  "
        if beside or row is table[0]:
            wrapped = _wrap(row[-1], width - indent) or [""]
            lines.append((head + wrapped[0]).rstrip())
            lines.extend(" " * indent + more for more in wrapped[1:])
        else:
            lines.append(head.rstrip())
            lines.extend(" " * UNDER_INDENT + more for more in _wrap(row[-1], width - UNDER_INDENT))
    return lines


MIN_ERROR_WIDTH = 40
UNDER_INDENT = 4


def _wrap(text: str, width: int) -> list[str]:
    """Whole words only: a path or URL in the message is never split (a line may then run longer)."""
    return textwrap.wrap(text, max(width, MIN_ERROR_WIDTH), break_long_words=False, break_on_hyphens=False)


def _state_cell(row: dict[str, Any], now: float) -> str:
    state = str(row["state"])
    retry_at = row.get("retry_at")
    if state == "failed" and retry_at:
        due = retry_at - now
        return f"failed (retry {'due' if due <= 0 else f'in {due:.0f} s'})"
    return state
