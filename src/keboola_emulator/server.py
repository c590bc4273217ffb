"""Wiring: the API app and the S3 app on two threaded WSGI servers, started and stopped together.

With `--file-storage azure|gcp`, Storage files live in Azurite / gcp-storage-emulator (child
processes, see abs.py and gcs.py); clients reach them through a third server, the front door
(front.py; for GCS it also checks the tokens). The S3 side still runs in every mode (the READY line
always names it). The front door logs request paths only (QuietHandler): no SAS, no session id."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from keboola_emulator import operations, uploads
from keboola_emulator.api import DropMiddleware, create_app
from keboola_emulator.context import Context
from keboola_emulator.faults import Faults, FaultSettings, Stats
from keboola_emulator.filestorage import FileStorage
from keboola_emulator.jobs import JobRunner
from keboola_emulator.model import Store
from keboola_emulator.s3 import S3Side
from keboola_emulator.tokens import TokenRegistry

if TYPE_CHECKING:  # the cloud SDKs load only in their own mode (RSS and start-up of aws mode)
    from keboola_emulator.abs import AzureSide
    from keboola_emulator.gcs import GcsSide

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


class QuietHandler(WSGIRequestHandler):
    """Request lines at DEBUG (stderr), never headers — the token travels in a header."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s -> %s", self.command, self.path.split("?", 1)[0], code)

    def log(self, type: str, message: str, *args: object) -> None:
        if type == "error":
            log.warning(message.rstrip(), *args)


@dataclass
class Options:
    port: int = 0
    s3_port: int = 0
    token: str = "local-dev-token"  # noqa: S105 - the documented default of a local emulator
    readonly_token: str | None = None
    data_dir: Path | None = None
    faults: FaultSettings | None = None
    seed: int | None = None
    job_workers: int = 8
    features: tuple[str, ...] = ()  # --feature NAME (§2.2, §12)
    file_storage: str = "aws"  # aws | azure | gcp (architecture.md §1: --file-storage)


class EmulatorServer:
    def __init__(self, options: Options) -> None:
        self._options = options
        self._tmp: str | None = None
        if options.data_dir is not None:
            root = options.data_dir
            root.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.mkdtemp(prefix="keboola-emulator-")
            root = Path(self._tmp)
        faults = Faults(options.faults or FaultSettings(), seed=options.seed)
        stats = Stats()
        store = Store(root)
        s3 = S3Side(faults, stats, mirror_dir=(root / "s3") if options.data_dir is not None else None)
        jobs = JobRunner(store, faults, stats, workers=options.job_workers)
        self._gcs: GcsSide | None = None
        self._azure: AzureSide | None = None
        files: FileStorage = s3
        if options.file_storage == "azure":
            from keboola_emulator.abs import AzureSide

            files = self._azure = AzureSide(root, faults, stats)
        elif options.file_storage == "gcp":
            from keboola_emulator.gcs import GcsSide

            files = self._gcs = GcsSide(root, faults, stats)
        self.ctx = Context(
            store=store,
            s3=s3,
            jobs=jobs,
            faults=faults,
            stats=stats,
            tokens=TokenRegistry(options.token, options.readonly_token),
            features=options.features,
            files=files,
        )
        operations.register(self.ctx)
        # §12: upload credentials write exactly their prepared key, encrypted keys need SSE
        s3.policy = lambda environ: uploads.refusal(environ, lambda file_id: uploads.grant_of(store.get_file(file_id)))
        self._api: BaseWSGIServer = make_server(
            HOST, options.port, DropMiddleware(create_app(self.ctx)), threaded=True, request_handler=QuietHandler
        )
        self._s3: BaseWSGIServer = make_server(
            HOST, options.s3_port, s3.wsgi, threaded=True, request_handler=QuietHandler
        )
        self._servers: list[tuple[str, BaseWSGIServer]] = [("api", self._api), ("s3", self._s3)]
        cloud = self._azure or self._gcs
        if cloud is not None:  # clients reach the cloud emulator through its front door (front.py)
            front = make_server(HOST, 0, cloud.front, threaded=True, request_handler=QuietHandler)
            cloud.set_front_url(f"http://{HOST}:{front.server_port}")
            self._servers.append((cloud.provider, front))
        for _, srv in self._servers:
            srv.daemon_threads = True
        self.api_url = f"http://{HOST}:{self._api.server_port}"
        self.s3_url = f"http://{HOST}:{self._s3.server_port}"
        self.ctx.api_url = self.api_url
        s3.endpoint = self.s3_url
        self._threads: list[threading.Thread] = []

    @property
    def ready_line(self) -> str:
        """architecture.md §1: `api=` and `s3=` first, then `azure=` or `gcs=` in those modes."""
        line = f"READY api={self.api_url} s3={self.s3_url}"
        if self._azure is not None:
            line += f" azure={self._azure.endpoint}"
        if self._gcs is not None:
            line += f" gcs={self._gcs.endpoint}"
        return line

    def start(self) -> None:
        for name, srv in self._servers:
            t = threading.Thread(
                target=srv.serve_forever, kwargs={"poll_interval": 0.1}, name=f"serve-{name}", daemon=True
            )
            t.start()
            self._threads.append(t)
        resumed = self.ctx.jobs.resume_unfinished()
        if resumed:
            log.info("resumed %d unfinished jobs", resumed)

    def stop(self) -> None:
        for _, srv in self._servers:
            srv.shutdown()
        self.ctx.jobs.shutdown()
        for _, srv in self._servers:
            srv.server_close()
        self.ctx.files.close()
        self.ctx.store.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
