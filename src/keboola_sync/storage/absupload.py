"""Uploads to Keboola file storage on Azure (the files/prepare answer's `absUploadParams`, §5.1).

The answer carries a SAS connection string scoped to one blob. The blob is built as Keboola's PHP client
builds it (§5.3): blocks staged in parallel (`Put Block`) as soon as their bytes are on disk, then the
block list committed (`Put Block List`); nothing is visible before the commit, and the uncommitted blocks
of an abandoned upload are discarded by Azure on its own. Blocks are windows over the spool read with
pread, so memory stays flat whatever the file's size.

Every request (each block, the commit) runs under the one retry policy (`retry.py`); azure-core's own
retries are off (`retry_total=0`) so no loop nests in another. A block is idempotent (same id, same
bytes), so re-sending one whose answer was lost is safe. The SAS is a credential: azure-core's request
logging (URLs) is kept at WARNING, and `classify` drops query strings from every message it keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from azure.storage.blob import BlobBlock, BlobClient, BlobServiceClient, ContentSettings

from .errors import Abandoned
from .logsafe import install as keep_credentials_out_of_logs
from .uploads import CloudUploader, FinishedFile, GrowingFile, Readable, UploadProgress

# azure-core logs every request (URL, headers) at INFO, and the daemon logs at INFO.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
# urllib3 quotes each block's URL, SAS and all, at DEBUG: cut it there (logsafe).
keep_credentials_out_of_logs()

MIB = 1024 * 1024
T = TypeVar("T")


def _body(window: Readable) -> IO[bytes]:
    """A block's body as the SDK's type names it: a window reads, seeks and tells like a file."""
    return cast("IO[bytes]", window)


def _block_id(number: int) -> str:
    """Block ids must all have the same length within a blob (the SDK base64-encodes them)."""
    return f"keboola-sync-{number:08d}"


class AbsUploader(CloudUploader):
    """Parallel blocks of `upload.multipart_chunk_mb`, `upload.multipart_concurrency` in flight, from a
    finished file or from one still being written; then the block list."""

    def _client(self, prepared: Mapping[str, Any]) -> BlobClient:
        """A client for the prepared blob only, one attempt per request (the policy retries)."""
        params = prepared["absUploadParams"]
        service = BlobServiceClient.from_connection_string(
            params["absCredentials"]["SASConnectionString"],
            connection_timeout=self._request_timeout,
            read_timeout=self._request_timeout,
            retry_total=0,
        )
        return service.get_blob_client(params["container"], params["blobName"])

    def upload_file(self, prepared: Mapping[str, Any], path: Path, size: int, label: str) -> None:
        """A finished file, by the same parallel blocks (an empty file commits an empty blob)."""
        with FinishedFile(path, size) as source:
            self.upload_growing(prepared, source, size, label)

    def upload_growing(self, prepared: Mapping[str, Any], source: GrowingFile, size_hint: int, label: str) -> None:
        """Stage the spool's blocks as they are written, then commit them."""
        client = self._client(prepared)
        count = self._stage_blocks(client, source, size_hint, label)
        if source.abandoned or self._abandon.is_set():
            raise Abandoned(f"upload of {label} abandoned at shutdown")
        name = prepared.get("name") or prepared["absUploadParams"]["blobName"].rsplit("/", 1)[-1]
        blocks = [BlobBlock(_block_id(n)) for n in range(count)]
        settings = ContentSettings(content_disposition=f'attachment;filename="{name}"')
        # Committing the same list twice leaves the same blob, so the commit is retried too.
        self._run(
            f"finishing the upload of {label}", lambda: client.commit_block_list(blocks, content_settings=settings)
        )

    def _stage_blocks(self, client: BlobClient, source: GrowingFile, size_hint: int, label: str) -> int:
        """Stage blocks as the source grows, at most `multipart_concurrency` at once, each under the retry
        policy; a block that still fails fails the upload as soon as it is seen. Returns the block count."""
        block = int(self._upload.multipart_chunk_mb * MIB)
        concurrency = self._upload.multipart_concurrency
        progress = UploadProgress(label, size_hint, self._progress_seconds, self._abandon, self._meter)

        def stage(number: int, start: int, length: int) -> None:
            self._run(
                f"uploading block {number + 1} of {label}",
                # a fresh window per attempt: a retry reads the block from its start
                lambda: client.stage_block(_block_id(number), _body(source.window(start, length)), length=length),
            )
            progress(length)

        with ThreadPoolExecutor(concurrency, thread_name_prefix="abs-block") as pool:
            running: set[Future[None]] = set()
            start, count = 0, 0
            while True:
                written, finished = source.wait_for(start + block)
                length = min(block, written - start)
                if length <= 0 and finished:
                    break
                if source.abandoned or self._abandon.is_set():
                    raise Abandoned(f"upload of {label} abandoned at shutdown")
                if length < block and not finished:
                    continue  # woke early: wait for a whole block (only the last one may be short)
                if len(running) >= concurrency:
                    completed, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in completed:
                        future.result()  # a failed block fails the upload now
                running.add(pool.submit(stage, count, start, length))
                start, count = start + length, count + 1
            for future in running:
                future.result()
        return count
