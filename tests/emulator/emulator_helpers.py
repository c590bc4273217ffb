"""Small helpers for the emulator's own tests: files on disk, uploads and raw jobs via kbcstorage.

kbcstorage's create()/load() raise RuntimeError(message) and drop the job's error code (§9.6),
so tests that check codes use the *_raw calls and read the job themselves.
"""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path
from typing import Any

from support.emulator import wait_for


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def write(path: Path, content: str | bytes, *, gz: bool = False) -> Path:
    data = content.encode("utf-8") if isinstance(content, str) else content
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def finished_job(client: Any, job: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
    return wait_for(
        lambda: (d := client.jobs.detail(job["id"]))["status"] in ("success", "error") and d,
        timeout=timeout,
        message=f"job {job['id']} to finish",
    )


def create_table_job(client: Any, bucket_id: str, name: str, path: Path, **kwargs: Any) -> dict[str, Any]:
    """Upload `path` and create a table from it; returns the finished job (success or error)."""
    file_id = client.files.upload_file(str(path), tags=["test"])
    job = client.tables.create_raw(bucket_id=bucket_id, name=name, data_file_id=file_id, **kwargs)
    return finished_job(client, job)


def load_job(client: Any, table_id: str, path: Path, **kwargs: Any) -> dict[str, Any]:
    file_id = client.files.upload_file(str(path), tags=["test"])
    job = client.tables.load_raw(table_id=table_id, data_file_id=file_id, **kwargs)
    return finished_job(client, job)


def preview_rows(client: Any, table_id: str) -> list[str]:
    """data-preview lines, sorted (row order is never guaranteed, §4.6), header first."""
    lines = client.tables.preview(table_id).split("\n")
    assert lines[-1] == "", "rfc preview ends with a newline"
    return [lines[0], *sorted(lines[1:-1])]


def new_bucket(client: Any) -> str:
    return str(client.buckets.create(unique("b"))["id"])
