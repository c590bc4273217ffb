"""Everything a request or a job handler may touch, passed explicitly instead of globals."""

from __future__ import annotations

from dataclasses import dataclass

from keboola_emulator.faults import Faults, Stats
from keboola_emulator.filestorage import FileStorage
from keboola_emulator.jobs import JobRunner
from keboola_emulator.model import Store
from keboola_emulator.s3 import S3Side
from keboola_emulator.tokens import TokenRegistry


@dataclass
class Context:
    store: Store
    s3: S3Side
    jobs: JobRunner
    faults: Faults
    stats: Stats
    tokens: TokenRegistry
    files: FileStorage  # where Storage files live: the S3 side, or Azurite / GCS (--file-storage)
    api_url: str = ""  # http://127.0.0.1:P once the API server listens
    features: tuple[str, ...] = ()  # project features (--feature): index `features`, token `owner.features`
