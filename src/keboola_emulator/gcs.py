"""`--file-storage gcp`: Storage files live in gcp-storage-emulator, behind a token-checking front door.

gcp-storage-emulator (PyPI, pinned in requirements-dev.txt) runs as a child process on a free loopback
port; docs/emulator.md says why it and not fake-gcs-server. Neither checks OAuth tokens, so clients
never reach it directly: they talk to `GcsFront` (the READY line's `gcs=` URL, which clients use as
STORAGE_EMULATOR_HOST), which checks each request the way GCS would for Keboola's tokens and then
streams it through:
- an upload token (§5.1 `gcsUploadParams.access_token`) may create only the prepared object (a
  sliced file: objects under its prefix) and read it back; a read token (§5.4 `gcsCredentials`) may
  only read;
- a resumable upload's session URL is itself the permission (as on GCS), once a valid token opened it;
- the signed `url` (§5.1) is an XML-API GET with an HMAC signature the emulator checks;
- everything else (bucket listing, other objects, deletes) is 401 without a token, 403 with one.
Jobs and exports use the child directly (the emulator is the service, not a client).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import importlib.util
import io
import json
import logging
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, quote, unquote, urlsplit

import requests
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[import-untyped]

from keboola_emulator.childproc import HOST, ChildProcess, free_port
from keboola_emulator.faults import Faults, Stats
from keboola_emulator.filestorage import READ_HOURS, UPLOAD_HOURS, URL_SECONDS, IteratorReader, expiry
from keboola_emulator.front import Denied, Front, read_all

log = logging.getLogger(__name__)

GCS_EMULATOR_VERSION = "2026.7.19"  # pinned in requirements-dev.txt
BUCKET = "kbc-sapi-files"
PROJECT = "kbc-emulator-project"
REGION = "europe-west3"  # §2.1: EU Frankfurt, GCP
TOKEN_SECONDS = 3600  # §5.1: GCS tokens live 1 h
CHUNK = 1024 * 1024
MAX_BUFFERED_BODY = 64 * 1024 * 1024  # multipart uploads carry the object name in the body
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass(frozen=True)
class Grant:
    """What one access token may do: the object `key` (or every object under it, for a sliced file)."""

    key: str
    prefix: bool
    write: bool
    expires: dt.datetime

    def allows(self, name: str, write: bool) -> bool:
        if dt.datetime.now(dt.UTC) >= self.expires or (write and not self.write):
            return False
        return name.startswith(self.key) if self.prefix else name == self.key


class GcsSide:
    """gcp-storage-emulator as the file storage of a GCP stack; `front` is what clients reach."""

    provider = "gcp"
    region = REGION

    def __init__(self, root: Path, faults: Faults, stats: Stats) -> None:
        if importlib.util.find_spec("gcp_storage_emulator") is None:
            raise RuntimeError(
                f"--file-storage gcp needs gcp-storage-emulator {GCS_EMULATOR_VERSION}: "
                "run `make setup` (it is in requirements-dev.txt)"
            )
        port = free_port()
        self._child_url = f"http://{HOST}:{port}"
        data_dir = root / "gcs"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._child = ChildProcess(
            "gcp-storage-emulator",
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "--data-dir",
                str(data_dir),
                "start",
                "--host",
                HOST,
                "--port",
                str(port),
                "--default-bucket",
                BUCKET,
                "--quiet",
            ],
            port,
            root / "gcs.log",
        )
        self._child.start()
        client = storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=self._child_url),
        )
        self._bucket = client.bucket(BUCKET)
        self._signing_key = secrets.token_bytes(32)
        self._grants: dict[str, Grant] = {}
        self._sessions: set[str] = set()
        self._finished: dict[str, bytes] = {}  # sessions whose last chunk was stored: the object's JSON
        self._lock = threading.Lock()
        self.endpoint = ""  # the front door's URL, set once it listens
        self.front = GcsFront(self, port, faults, stats)

    def set_front_url(self, url: str) -> None:
        self.endpoint = url
        self.front.endpoint = url

    def close(self) -> None:
        self._child.stop()

    # -- objects (the service's own access) --------------------------------------------------------
    def object_size(self, key: str) -> int | None:
        blob = self._bucket.get_blob(key)
        return None if blob is None else int(blob.size or 0)

    def open_object(self, key: str) -> BinaryIO | None:
        """A streamed media GET straight to the child. Not the client library's reader: it follows the
        object's `mediaLink`, which names the front door (clients uploaded through it)."""
        url = f"{self._child_url}/download/storage/v1/b/{BUCKET}/o/{quote(key, safe='')}?alt=media"
        resp = requests.get(url, stream=True, timeout=600)
        if resp.status_code == 404:
            resp.close()
            return None
        resp.raise_for_status()
        return io.BufferedReader(IteratorReader(resp.iter_content(CHUNK), resp.close), buffer_size=CHUNK)

    def put_object_from_file(self, key: str, path: Path) -> int:
        self._bucket.blob(key).upload_from_filename(str(path))
        return path.stat().st_size

    def put_bytes(self, key: str, data: bytes) -> None:
        self._bucket.blob(key).upload_from_string(data)

    def delete_prefix(self, prefix: str) -> None:
        for blob in self._bucket.list_blobs(prefix=prefix):
            with contextlib.suppress(NotFound):
                blob.delete()

    # -- what clients get --------------------------------------------------------------------------
    def _grant(self, key: str, *, sliced: bool, write: bool, hours: float) -> str:
        token = "ya29.kbc-emulator." + secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            if len(self._grants) >= 10_000:  # a long benchmark prepares many files: forget dead tokens
                self._grants = {t: g for t, g in self._grants.items() if g.expires > now}
            self._grants[token] = Grant(key, sliced, write, expiry(hours))
        return token

    def upload_fields(self, key: str, *, file_id: int, sliced: bool, encrypted: bool) -> dict[str, Any]:
        """§5.1 `gcsUploadParams` (GCS always encrypts at rest)."""
        token = self._grant(key, sliced=sliced, write=True, hours=min(UPLOAD_HOURS, TOKEN_SECONDS / 3600))
        return {
            "gcsUploadParams": {
                "projectId": PROJECT,
                "bucket": BUCKET,
                "key": key,
                "access_token": token,
                "expires_in": TOKEN_SECONDS,
                "token_type": "Bearer",
            }
        }

    def read_fields(self, key: str, *, file_id: int, sliced: bool) -> dict[str, Any]:
        """§5.4 `gcsCredentials` + `gcsPath`."""
        token = self._grant(key, sliced=sliced, write=False, hours=min(READ_HOURS, TOKEN_SECONDS / 3600))
        return {
            "gcsCredentials": {
                "access_token": token,
                "expires_in": TOKEN_SECONDS,
                "token_type": "Bearer",
                "projectId": PROJECT,
            },
            "gcsPath": {"bucket": BUCKET, "key": key},
        }

    def _signature(self, key: str, date: str, expires: str) -> str:
        message = f"GET\n/{BUCKET}/{key}\n{date}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def signed_get(self, key: str, *, public: bool = False) -> str:
        """An XML-API GET signed V4-style; only the front door can check the signature."""
        date = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        expires = str(URL_SECONDS)
        return (
            f"{self.endpoint}/{BUCKET}/{quote(key, safe='/~')}?X-Goog-Algorithm=GOOG4-HMAC-SHA256"
            f"&X-Goog-Date={date}&X-Goog-Expires={expires}&X-Goog-SignedHeaders=host"
            f"&X-Goog-Signature={self._signature(key, date, expires)}"
        )

    def slice_url(self, key: str) -> str:
        """§5.2: gs://<bucket>/<key><suffix>."""
        return f"gs://{BUCKET}/{key}"

    def key_of_slice_url(self, url: str) -> str | None:
        prefix = f"gs://{BUCKET}/"
        return url[len(prefix) :] if url.startswith(prefix) else None

    # -- checks the front door asks for ----------------------------------------------------------
    def check_token(self, authorization: str, name: str, write: bool) -> None:
        if not authorization.startswith("Bearer "):
            raise Denied(
                401, "Anonymous caller does not have storage.objects access to the Google Cloud Storage object."
            )
        with self._lock:
            grant = self._grants.get(authorization[len("Bearer ") :].strip())
        if grant is None:
            raise Denied(401, "Invalid Credentials")
        if not grant.allows(name, write):
            action = "create" if write else "get"
            raise Denied(403, f"The token does not have storage.objects.{action} access to the object {name}.")

    def check_signature(self, key: str, query: dict[str, list[str]]) -> None:
        def one(name: str) -> str:
            return (query.get(name) or [""])[0]

        date, expires, signature = one("X-Goog-Date"), one("X-Goog-Expires"), one("X-Goog-Signature")
        try:
            issued = dt.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            alive = dt.datetime.now(dt.UTC) < issued + dt.timedelta(seconds=int(expires))
        except ValueError:
            alive = False
        if not (alive and hmac.compare_digest(signature, self._signature(key, date, expires))):
            raise Denied(403, "SignatureDoesNotMatch or ExpiredToken")

    def open_session(self, upload_id: str) -> None:
        with self._lock:
            self._sessions.add(upload_id)

    def has_session(self, upload_id: str) -> bool:
        with self._lock:
            return upload_id in self._sessions

    def drop_session(self, upload_id: str) -> None:
        with self._lock:
            self._sessions.discard(upload_id)
            self._finished.pop(upload_id, None)

    def finish_session(self, upload_id: str, object_json: bytes) -> None:
        with self._lock:
            if upload_id in self._sessions:
                if len(self._finished) >= 10_000:  # a long benchmark finishes many sessions
                    self._finished.clear()
                self._finished[upload_id] = object_json

    def finished_session(self, upload_id: str) -> bytes | None:
        with self._lock:
            return self._finished.get(upload_id)


def _object_in_path(raw_path: str, *prefixes: str) -> str | None:
    """`a/b.csv` from `/storage/v1/b/<bucket>/o/a%2Fb.csv` (JSON API object paths are escaped)."""
    for prefix in prefixes:
        head = f"{prefix}/b/{BUCKET}/o/"
        if raw_path.startswith(head):
            return unquote(raw_path[len(head) :])
    return None


def _name_in_body(body: bytes) -> str:
    """The object name of a resumable initiation (JSON) or a multipart upload (JSON first part)."""
    text = body[: 64 * 1024].decode("utf-8", "replace")
    start = text.find("{")
    if start < 0:
        return ""
    try:
        meta, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return ""
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""


class GcsFront(Front):
    """GCS's checks of Keboola's tokens, before gcp-storage-emulator (which checks none)."""

    fault_kind = "gcs_chunk"

    def __init__(self, side: GcsSide, child_port: int, faults: Faults, stats: Stats) -> None:
        super().__init__(child_port, faults, stats)
        self._side = side

    def lose_answer(self, method: str, query: dict[str, list[str]]) -> bool:
        """The cloud_chunk_fail_rate fault: a resumable chunk is stored, the client is told 503."""
        return (
            method == "PUT" and "upload_id" in query and self._faults.draw(self._faults.current().cloud_chunk_fail_rate)
        )

    refuse_status = 401  # GCS: "Invalid Credentials" for an expired access token

    def known_answer(self, method: str, query: dict[str, list[str]]) -> tuple[int, bytes] | None:
        """A request to a session whose last chunk was stored: GCS answers 200 and the object (so a
        client that lost the last chunk's answer learns from its status query that it is done)."""
        if method != "PUT" or "upload_id" not in query:
            return None
        done = self._side.finished_session(query["upload_id"][0])
        return None if done is None else (200, done)

    def keeps_answer(self, method: str, query: dict[str, list[str]]) -> bool:
        return method == "PUT" and "upload_id" in query

    def answered(self, query: dict[str, list[str]], status: int, data: bytes) -> None:
        if status in (200, 201):
            self._side.finish_session(query["upload_id"][0], data)

    def forget_session(self, query: dict[str, list[str]]) -> None:
        if "upload_id" in query:
            self._side.drop_session(query["upload_id"][0])

    def authorize(
        self, method: str, path: str, query: dict[str, list[str]], raw_uri: str, environ: dict[str, Any], body: Any
    ) -> tuple[Any, str]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if path.startswith(f"/upload/storage/v1/b/{BUCKET}/o"):
            return self._authorize_upload(method, query, raw_uri, environ, body, auth)
        object_name = _object_in_path(path, "/storage/v1", "/download/storage/v1")
        if object_name is not None and method in ("GET", "HEAD"):
            self._side.check_token(auth, object_name, write=False)
            return body, raw_uri
        if method in ("GET", "HEAD") and path.startswith(f"/{BUCKET}/") and "X-Goog-Signature" in query:
            key = unquote(path[len(f"/{BUCKET}/") :])
            self._side.check_signature(key, query)
            return body, path  # the child does not know the signature parameters
        raise Denied(401 if not auth else 403, "The caller does not have permission for this request.")

    def _authorize_upload(
        self, method: str, query: dict[str, list[str]], raw_uri: str, environ: dict[str, Any], body: Any, auth: str
    ) -> tuple[Any, str]:
        if method == "PUT" and "upload_id" in query:
            if not self._side.has_session(query["upload_id"][0]):
                raise Denied(404, "No such upload session.")
            return body, raw_uri
        if method != "POST":
            raise Denied(403, "Method not allowed for this token.")
        name = (query.get("name") or [""])[0]
        if not name:  # multipart uploads and resumable initiations carry the name in the body
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > MAX_BUFFERED_BODY:
                raise Denied(400, "Upload metadata too large for the emulator's front door.")
            body = read_all(body, length)
            name = _name_in_body(body)
        self._side.check_token(auth, name, write=True)
        return body, raw_uri

    def public_location(self, location: str) -> str:
        """A resumable session URL: point it at the front door and remember it (it is the permission)."""
        parts = urlsplit(location)
        upload_id = (parse_qs(parts.query).get("upload_id") or [""])[0]
        if upload_id:
            self._side.open_session(upload_id)
        return self.endpoint + parts.path + (f"?{parts.query}" if parts.query else "")

    def error(self, start_response: Callable[..., Any], status: int, message: str) -> list[bytes]:
        """The JSON error shape of the GCS JSON API."""
        reason = {401: "required", 403: "forbidden", 404: "notFound", 410: "gone", 503: "backendError"}.get(
            status, "invalid"
        )
        errors = [{"message": message, "domain": "global", "reason": reason}]
        body = json.dumps({"error": {"code": status, "message": message, "errors": errors}}).encode()
        phrase = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 410: "Gone", 503: "Service Unavailable"}.get(
            status, "Bad Request"
        )
        start_response(f"{status} {phrase}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
