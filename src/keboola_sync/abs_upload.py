"""Upload to Azure Blob Storage (Keboola's Azure stack) as a block blob, while the spool still grows.

The prepare answer (§5.1 `absUploadParams`) carries a SAS connection string scoped to one blob. The
blob is built as the PHP client does (§5.3: 4 MiB blocks, many in flight): each block is staged
(`Put Block`) as soon as its bytes are on disk, several at once, and the block list is committed
(`Put Block List`) when the writer is done. Nothing is visible until the commit; uncommitted blocks of
an abandoned upload are discarded by Azure after a week. Blocks are windows over the spool read with
pread, so memory stays flat (no block is held in RAM beyond the HTTP client's buffers).

Errors propagate as azure-core exceptions (`HttpResponseError.status_code`, `ServiceRequestError`
for a connection failure); each block already gets azure-core's own retries. The SAS is a credential:
it is never logged (azure-core's request logging, which prints URLs, is kept at WARNING).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobBlock, BlobClient, BlobServiceClient, ContentSettings, ExponentialRetry

from keboola_sync.growing import FinishedFile, GrowingSource, UploadAbandoned

log = logging.getLogger(__name__)
# azure-core logs every request (URL, headers) at INFO; the daemon logs at INFO. Query signatures are
# redacted there, but nothing about a signed request belongs in the daemon's log.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

BLOCK_BYTES = 4 * 1024 * 1024  # §5.3: the PHP client's block size
CONCURRENCY = 8
TIMEOUT_SECONDS = 120.0
RETRIES = 5  # per request, by azure-core
RETRY_BACKOFF_SECONDS = 1  # azure-storage-blob's default first pause is 15 s, per block


def blob_client(
    prepared: dict[str, Any], timeout: float = TIMEOUT_SECONDS, retry_backoff: int = RETRY_BACKOFF_SECONDS
) -> BlobClient:
    """A client for the prepared blob only. Retries: azure-core's exponential policy (pause
    `retry_backoff` + 2**n s with jitter), on 5xx, 408, 429 and connection errors; a block is
    idempotent (same id, same bytes), so re-sending one whose answer was lost is safe."""
    params = prepared["absUploadParams"]
    service = BlobServiceClient.from_connection_string(
        params["absCredentials"]["SASConnectionString"],
        connection_timeout=timeout,
        read_timeout=timeout,
        retry_policy=ExponentialRetry(initial_backoff=retry_backoff, increment_base=2, retry_total=RETRIES),
    )
    return service.get_blob_client(params["container"], params["blobName"])


def _block_id(number: int) -> str:
    """Block ids must all have the same length within a blob (the SDK base64-encodes them)."""
    return f"keboola-sync-{number:08d}"


def upload_growing(
    prepared: dict[str, Any],
    source: GrowingSource,
    size_hint: int,
    *,
    block_bytes: int = BLOCK_BYTES,
    concurrency: int = CONCURRENCY,
    timeout: float = TIMEOUT_SECONDS,
    retry_backoff: int = RETRY_BACKOFF_SECONDS,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Stage the spool's blocks as they are written, then commit them. `size_hint` (the expected size,
    0 if unknown) only sizes nothing here; it is accepted so every uploader has one signature.
    `on_progress(n)` is called from the upload threads with each block's byte count."""
    client = blob_client(prepared, timeout, retry_backoff)
    ids: list[str] = []

    def stage(number: int, start: int, length: int) -> None:
        client.stage_block(_block_id(number), source.window(start, length), length=length)
        if on_progress is not None:
            on_progress(length)

    with ThreadPoolExecutor(concurrency, thread_name_prefix="abs-block") as pool:
        running: set[Future[None]] = set()
        start = 0
        while True:
            written, finished = source.wait_for(start + block_bytes)
            length = min(block_bytes, written - start)
            if length <= 0 and finished:
                break
            if source.abandoned():
                raise UploadAbandoned("upload abandoned")
            if length < block_bytes and not finished:
                continue  # woke early: wait for a whole block (only the last one may be short)
            if len(running) >= concurrency:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # a failed block fails the upload now
            ids.append(_block_id(len(ids)))
            running.add(pool.submit(stage, len(ids) - 1, start, length))
            start += length
        for future in running:
            future.result()
    if source.abandoned():
        raise UploadAbandoned("upload abandoned")
    name = prepared.get("name") or prepared["absUploadParams"]["blobName"].rsplit("/", 1)[-1]
    client.commit_block_list(
        [BlobBlock(block_id) for block_id in ids],
        content_settings=ContentSettings(content_disposition=f'attachment;filename="{name}"'),
    )


def upload_file(
    prepared: dict[str, Any],
    path: Path,
    size: int,
    *,
    block_bytes: int = BLOCK_BYTES,
    concurrency: int = CONCURRENCY,
    timeout: float = TIMEOUT_SECONDS,
    retry_backoff: int = RETRY_BACKOFF_SECONDS,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """A finished file, by the same parallel blocks (an empty file commits an empty blob)."""
    with FinishedFile(path, size) as source:
        upload_growing(
            prepared,
            source,
            size,
            block_bytes=block_bytes,
            concurrency=concurrency,
            timeout=timeout,
            retry_backoff=retry_backoff,
            on_progress=on_progress,
        )
