"""`--file-storage azure`: Storage files live in Azurite, Microsoft's own Azure Storage emulator.

Azurite (npm package `azurite`, pinned in the Makefile, installed into the git-ignored `.tools/`) runs
as a child process with its blob service only. The API side answers as the Azure stack does (§5.1
`absUploadParams`, §5.4 `absCredentials`/`absPath`, §5.2 `azure://` manifest entries) and hands out
shared access signatures signed with Azurite's well-known account key, so Azurite itself enforces them:
- an upload SAS may create and write only the prepared blob (`sr=b`, `sp=cw`); a sliced file's upload
  SAS is container-scoped (`sr=c`), because a SAS cannot be limited to a name prefix;
- a read SAS (federationToken detail, the signed `url`) may only read (`sp=r`), the blob or, for a
  sliced file (manifest + slices), the container.
Clients reach Azurite through the emulator's front door (front.py: stats, bandwidth cap, lost-answer
faults); jobs and exports talk to Azurite directly with the account key (the emulator is the service).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

from keboola_emulator.childproc import HOST, ChildProcess, free_port
from keboola_emulator.faults import Faults, Stats
from keboola_emulator.filestorage import READ_HOURS, UPLOAD_HOURS, URL_SECONDS, IteratorReader, expiry
from keboola_emulator.front import Front

log = logging.getLogger(__name__)

AZURITE_VERSION = "3.35.0"  # the last release whose engines field accepts Node 20 (3.36 wants >= 21)
ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key (public, documented)
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "kbc-sapi-files"
REGION = "northeurope"  # §2.1: the Azure stack is EU Ireland
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHUNK = 4 * 1024 * 1024


def azurite_command() -> str:
    """`azurite-blob` from the project's `.tools/` (make setup), else from PATH."""
    local = PROJECT_ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-blob")
    if found:
        return found
    raise RuntimeError(
        f"--file-storage azure needs Azurite {AZURITE_VERSION}: run `make setup` "
        f"(installs it into {local.parent.parent.parent}) or put azurite-blob on PATH"
    )


class AzureSide:
    """Azurite as the file storage of an Azure stack."""

    provider = "azure"
    region = REGION

    def __init__(self, root: Path, faults: Faults, stats: Stats) -> None:
        port = free_port()
        child_url = f"http://{HOST}:{port}/{ACCOUNT}"
        self.endpoint = child_url  # the READY line's azure= URL: the front door's, once it listens
        self.front = AzureFront(port, faults, stats)
        self._child = ChildProcess(
            "azurite",
            [
                azurite_command(),
                "--blobHost",
                HOST,
                "--blobPort",
                str(port),
                "--location",
                str(root / "azurite"),
                "--silent",
                "--disableTelemetry",
                # azure-storage-blob may speak a newer API version than the pinned Azurite lists
                "--skipApiVersionCheck",
            ],
            port,
            root / "azurite.log",
        )
        self._child.start()
        service = BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={child_url};",
            max_single_get_size=CHUNK,  # a job reads a blob 4 MiB at a time (the SDK's default is 32 MiB)
            max_chunk_get_size=CHUNK,
        )
        self._container = service.get_container_client(CONTAINER)
        with contextlib.suppress(ResourceExistsError):  # --data-dir: Azurite kept it
            self._container.create_container()

    def set_front_url(self, url: str) -> None:
        """Clients reach Azurite through the front door (stats, bandwidth cap, faults); Azurite still
        checks every SAS itself (the signed resource is the path, not the host)."""
        self.front.endpoint = url
        self.endpoint = f"{url}/{ACCOUNT}"

    def close(self) -> None:
        self._child.stop()

    # -- objects (the service's own access, with the account key) --------------------------------
    def object_size(self, key: str) -> int | None:
        try:
            return int(self._container.get_blob_client(key).get_blob_properties().size)
        except ResourceNotFoundError:
            return None

    def open_object(self, key: str) -> BinaryIO | None:
        try:
            download = self._container.get_blob_client(key).download_blob(max_concurrency=1)
        except ResourceNotFoundError:
            return None
        return io.BufferedReader(IteratorReader(iter(download.chunks())), buffer_size=CHUNK)

    def put_object_from_file(self, key: str, path: Path) -> int:
        with open(path, "rb") as src:
            self._container.get_blob_client(key).upload_blob(src, overwrite=True, max_concurrency=2)
        return path.stat().st_size

    def put_bytes(self, key: str, data: bytes) -> None:
        self._container.get_blob_client(key).upload_blob(data, overwrite=True)

    def delete_prefix(self, prefix: str) -> None:
        for blob in self._container.list_blobs(name_starts_with=prefix):
            with contextlib.suppress(ResourceNotFoundError):
                self._container.delete_blob(blob.name)

    # -- what clients get --------------------------------------------------------------------------
    def _sas(self, key: str, *, sliced: bool, write: bool, hours: int) -> tuple[str, str]:
        """A SAS for `key` (the container for a sliced file) and its expiry."""
        expires = expiry(hours)
        if sliced:
            perm_c = ContainerSasPermissions(create=True, write=True) if write else ContainerSasPermissions(read=True)
            sas = generate_container_sas(ACCOUNT, CONTAINER, account_key=ACCOUNT_KEY, permission=perm_c, expiry=expires)
        else:
            perm_b = BlobSasPermissions(create=True, write=True) if write else BlobSasPermissions(read=True)
            sas = generate_blob_sas(ACCOUNT, CONTAINER, key, account_key=ACCOUNT_KEY, permission=perm_b, expiry=expires)
        return sas, expires.strftime("%Y-%m-%dT%H:%M:%S+0000")

    def _credentials(self, key: str, *, sliced: bool, write: bool, hours: int) -> dict[str, str]:
        sas, expires = self._sas(key, sliced=sliced, write=write, hours=hours)
        # §5.1: "BlobEndpoint=https://<acct>.blob.core.windows.net;SharedAccessSignature=sv=…"
        return {
            "SASConnectionString": f"BlobEndpoint={self.endpoint};SharedAccessSignature={sas}",
            "expiration": expires,
        }

    def upload_fields(self, key: str, *, file_id: int, sliced: bool, encrypted: bool) -> dict[str, Any]:
        """§5.1 `absUploadParams` (Azure always encrypts at rest: nothing to ask for)."""
        return {
            "absUploadParams": {
                "blobName": key,
                "accountName": ACCOUNT,
                "container": CONTAINER,
                "absCredentials": self._credentials(key, sliced=sliced, write=True, hours=UPLOAD_HOURS),
            }
        }

    def read_fields(self, key: str, *, file_id: int, sliced: bool) -> dict[str, Any]:
        """§5.4 `absCredentials` + `absPath`."""
        return {
            "absCredentials": self._credentials(key, sliced=sliced, write=False, hours=READ_HOURS),
            "absPath": {"container": CONTAINER, "name": key},
        }

    def signed_get(self, key: str, *, public: bool = False) -> str:
        sas = generate_blob_sas(
            ACCOUNT,
            CONTAINER,
            key,
            account_key=ACCOUNT_KEY,
            permission=BlobSasPermissions(read=True),
            expiry=expiry(URL_SECONDS / 3600),
        )
        return f"{self.endpoint}/{CONTAINER}/{quote(key, safe='/~')}?{sas}"

    def slice_url(self, key: str) -> str:
        """§5.2: azure://<account>.blob.core.windows.net/<container>/<blobName><suffix>."""
        return f"azure://{ACCOUNT}.blob.core.windows.net/{CONTAINER}/{key}"

    def key_of_slice_url(self, url: str) -> str | None:
        prefix = f"azure://{ACCOUNT}.blob.core.windows.net/{CONTAINER}/"
        return url[len(prefix) :] if url.startswith(prefix) else None


class AzureFront(Front):
    """Pass-through before Azurite (it checks the SAS itself), with the cloud faults."""

    fault_kind = "abs_block"

    def lose_answer(self, method: str, query: dict[str, list[str]]) -> bool:
        """The cloud_chunk_fail_rate fault: a Put Block is stored, the client is told 503."""
        return (
            method == "PUT"
            and query.get("comp") == ["block"]
            and self._faults.draw(self._faults.current().cloud_chunk_fail_rate)
        )

    def error(self, start_response: Callable[..., Any], status: int, message: str) -> list[bytes]:
        """Azure Storage's XML error shape."""
        # 403 AuthenticationFailed is what Azure answers a SAS past its expiry (the `refuse` cloud fault).
        code = {503: "ServerBusy", 403: "AuthenticationFailed", 410: "BlobNotFound"}.get(status, "AuthorizationFailure")
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
        ).encode()
        start_response(
            f"{status} {http.client.responses.get(status, 'Error')}",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body))), ("x-ms-error-code", code)],
        )
        return [body]
