"""Upload a big file's gzip spool while the pass is still writing it (best effort, issue 7)."""

from __future__ import annotations

import logging
import threading

from .csvfile import Dialect, SpoolReader
from .layout import Target
from .load import Loader
from .storage import StorageError

log = logging.getLogger("keboola_sync.sync")


class Overlap:
    """Uploads a big file's gzip spool while the pass is still writing it (issue 7: the uplink, not the
    CPU, should set the pace). Best effort: if anything goes wrong, the caller uploads the finished spool
    with the full retry policy. Never starts when the header would be refused: nothing remote is touched
    for a file that is going to be skipped."""

    def __init__(self, loader: Loader, rel_path: str, target: Target, size: int) -> None:
        self._loader, self._rel_path, self._size = loader, rel_path, size
        self._thread: threading.Thread | None = None
        self._file_id: int | None = None
        self._remote_columns: tuple[str, ...] | None = None
        try:
            remote = loader.storage.get_table(target.table_id)
            self._remote_columns = remote.columns if remote is not None else None
            self._known = True
            log.debug("%s: table looked up before the pass", rel_path)
        except StorageError:
            self._known = False  # Keboola is not answering: the plain path will retry and report

    def on_header(self, dialect: Dialect, columns: tuple[str, ...], reader: SpoolReader | None) -> None:
        if reader is None:
            return
        if not self._known or (
            self._remote_columns is not None and self._loader.header_refused(self._remote_columns, columns)
        ):
            reader.close()
            return
        self._thread = threading.Thread(target=self._upload, args=(reader,), name="overlap-upload", daemon=True)
        self._thread.start()

    def _upload(self, reader: SpoolReader) -> None:
        try:
            self._file_id = self._loader.storage.upload_stream(
                reader, name=reader.name, size_hint=self._size, label=self._rel_path
            )
            reader.uploaded()  # its pace sets the next load's gzip level (upload.gzip_level: auto)
        except Exception as exc:  # the finished spool is uploaded the ordinary way instead
            if reader.abandoned:  # the pass refused the file: its own outcome line says why
                log.debug("%s: upload during the pass stopped with the pass", self._rel_path)
            else:
                log.info(
                    "%s: uploading while compressing did not work (%s); uploading the finished file",
                    self._rel_path,
                    exc,
                    extra={"file": self._rel_path},
                )
        finally:
            reader.close()

    def result(self) -> int | None:
        if self._thread is not None:
            self._thread.join()
        return self._file_id
