"""First-level folders -> Keboola buckets: which bucket a folder's files load into, created when missing.

The ids Keboola gave (recorded in the ledger) win over the layout's predictions, and a bucket already
checked or created is not asked about again; the set of known buckets is shared with the loader, which
forgets a bucket it finds gone.
"""

from __future__ import annotations

import logging
import threading

from .layout import Ignored, Layout, Rejected, Target
from .live import LiveConfig
from .state import Ledger
from .storage import Storage

log = logging.getLogger("keboola_sync.sync")


class FolderBuckets:
    def __init__(self, live: LiveConfig, storage: Storage, ledger: Ledger) -> None:
        self.live = live
        self.storage = storage
        self.ledger = ledger
        self.known = ledger.known_buckets()  # shared with the Loader: the buckets known to exist
        self._bucket_of = ledger.bucket_of_folder()  # the ids Keboola gave; they win over predictions
        self._warned_folders: set[str] = set()
        self._bucket_lock = threading.Lock()

    @property
    def layout(self) -> Layout:
        return self.live.layout

    def in_bucket(self, target: Target) -> Target:
        """The target in the bucket Keboola gave its folder, when the ledger knows one."""
        if target.folder in self._bucket_of:
            return target.in_bucket(self._bucket_of[target.folder])
        return target

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
        if bucket_id in self.known:
            return bucket_id
        with self._bucket_lock:  # a folder job and its first file may both get here: one checks, one skips
            if bucket_id in self.known:
                return bucket_id
            return self._ensure_bucket(folder, bucket_name, bucket_id)

    def _ensure_bucket(self, folder: str, bucket_name: str, predicted: str) -> str:
        bucket_id, created = self.storage.ensure_bucket(bucket_name, self.live.config.keboola.stage)
        if created:
            log.info("created bucket %s for folder %s", bucket_id, folder, extra={"bucket": bucket_id})
        else:
            log.info("bucket %s for folder %s already exists", bucket_id, folder, extra={"bucket": bucket_id})
        self.ledger.record_bucket(bucket_id, folder)
        self.known.add(bucket_id)
        self._bucket_of[folder] = bucket_id
        return bucket_id

    def bucket_known(self, folder: str) -> bool:
        """Already created or checked (this run or recorded in the ledger): no Keboola call needed."""
        result = self.folder_bucket(folder)
        return not isinstance(result, tuple) or result[1] in self.known
