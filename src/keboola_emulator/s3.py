"""The file-storage side: moto's S3 server app, in this process, on its own port.

Why moto and not our own S3: clients (boto3 single PUT, the transfer manager's multipart uploads,
presigned GETs) must meet a real S3 protocol implementation. What we add around it:
- the Keboola files bucket is created at start;
- a WSGI wrapper counts uploaded bytes and enforces the `s3_bandwidth_mbps` fault;
- multipart completion is made streaming (moto joins all parts in one bytes object, which for a
  5 GB upload means 10 GB of RAM) — see `_complete_multipart_streaming`;
- with --data-dir, every stored object is mirrored to disk and re-seeded into moto at start.
Jobs read objects straight from moto's backend in chunks (`open_object`), never the whole value.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import hashlib
import io
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

# moto keeps each object in a SpooledTemporaryFile that stays in RAM up to ~5 MB; every load
# leaves a Storage file behind (kept 15 days, §5.4), so cap the in-memory part at 256 KiB and let
# bigger objects live on disk. Must be set before moto creates any key.
os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(256 * 1024))

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import create_backend_app
from moto.s3 import models as s3_models
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import FakeKey, S3Backend, s3_backends
from moto.utilities.utils import md5_hash
from werkzeug.wsgi import get_input_stream

from keboola_emulator.faults import Faults, Stats, ThrottledInput
from keboola_emulator.filestorage import URL_SECONDS
from keboola_emulator.uploads import FILES_BUCKET, credentials

log = logging.getLogger(__name__)

REGION = "us-east-1"
CHUNK = 256 * 1024
BIG_BODY = 1 << 20
_PRESIGN_CREDENTIALS = Credentials("emulator", "emulator")  # moto accepts any signature


def _path_style(environ: dict[str, Any]) -> None:
    """A virtual-hosted request (`Host: kbc-sapi-files.s3.<region>.amazonaws.com`, as kbagent sends
    through a TLS front) becomes the path-style one the rest of this module and the mirror expect."""
    host = environ.get("HTTP_HOST", "").split(":", 1)[0]
    if host.startswith(FILES_BUCKET + ".s3.") and host.endswith(".amazonaws.com"):
        environ["PATH_INFO"] = f"/{FILES_BUCKET}{environ.get('PATH_INFO', '') or '/'}"
        for raw in ("RAW_URI", "REQUEST_URI"):  # moto reads the raw path when the server sets it
            if environ.get(raw, "").startswith("/"):
                environ[raw] = f"/{FILES_BUCKET}{environ[raw]}"
        environ["HTTP_HOST"] = "127.0.0.1"


def backend() -> S3Backend:
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _complete_multipart_streaming(
    self: S3Backend, bucket_name: str, multipart_id: str, body: Iterable[tuple[int, str]]
) -> FakeKey | None:
    """Same contract as moto's `complete_multipart_upload`, but parts are copied chunk by chunk."""
    import codecs

    bucket = self.get_bucket(bucket_name)
    multipart = bucket.multiparts[multipart_id]
    checksum_builder = s3_models.MultipartChecksumBuilder(
        multipart.metadata.get("x-amz-checksum-algorithm"), multipart.metadata.get("x-amz-checksum-type")
    )
    full_object = _FullObjectChecksum.wanted(multipart.metadata)
    decode_hex = codecs.getdecoder("hex_codec")
    parts, md5s, last = [], bytearray(), None
    for pn, etag in body:
        part = multipart.parts.get(pn)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if last is not None and last.contentsize < s3_models.S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(decode_hex(part.etag.replace('"', ""))[0])  # type: ignore[arg-type]
        if full_object is not None:
            full_object.update(part.value)  # moto's builder would keep the whole object in RAM
        else:
            checksum_builder.addPart(part.value)  # composite: one small digest per part
        parts.append(part)
        last = part
    if not parts:
        raise MalformedXML()
    full_etag = md5_hash()
    full_etag.update(bytes(md5s))
    key = self.put_object(
        bucket_name,
        multipart.key_name,
        b"",
        storage=multipart.storage,
        etag=f"{full_etag.hexdigest()}-{len(parts)}",
        encryption=multipart.sse_encryption,
        kms_key_id=multipart.kms_key_id,
    )
    total = 0
    with key.lock:
        out = key._value_buffer
        for part in parts:
            with part.lock:
                part._value_buffer.seek(0)
                shutil.copyfileobj(part._value_buffer, out, CHUNK)
            total += part.contentsize
    key.contentsize = total
    del bucket.multiparts[multipart_id]  # moto's MultipartDict disposes the parts on delete
    key.set_metadata(multipart.metadata)
    checksum = full_object.build(len(parts)) if full_object is not None else checksum_builder.build()
    if checksum:
        key.checksum_algorithm = multipart.metadata.get("x-amz-checksum-algorithm")
        key.checksum_type, key.checksum_value, key.checksum_parts = checksum
    self.put_object_tagging(key, multipart.tags)
    self.put_object_acl(bucket_name=bucket_name, key_name=key.name, acl=multipart.acl, disable_notification=True)
    return key


class _FullObjectChecksum:
    """A FULL_OBJECT multipart checksum computed part by part (same algorithms and fallbacks as
    moto's `compute_checksum`: without crc32c/awscrt installed, moto itself falls back to CRC32)."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._crc = 0
        self._hash = (
            hashlib.sha1(usedforsecurity=False)
            if algorithm == "SHA1"
            else (hashlib.sha256(usedforsecurity=False) if algorithm == "SHA256" else None)
        )

    @classmethod
    def wanted(cls, metadata: Any) -> _FullObjectChecksum | None:
        algorithm = metadata.get("x-amz-checksum-algorithm") or "CRC64NVME"
        kind = metadata.get("x-amz-checksum-type") or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
        return cls(algorithm) if kind == "FULL_OBJECT" else None

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        else:
            self._crc = binascii.crc32(data, self._crc)

    def build(self, parts: int) -> tuple[str, str, int]:
        digest = self._hash.digest() if self._hash is not None else self._crc.to_bytes(4, "big")
        return "FULL_OBJECT", base64.b64encode(digest).decode(), 1


S3Backend.complete_multipart_upload = _complete_multipart_streaming  # type: ignore[method-assign]


class ObjectReader(io.RawIOBase):
    """Reads a moto object in chunks, taking the key's lock per chunk (never the whole value)."""

    def __init__(self, key: FakeKey) -> None:
        self._key = key
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._key.lock:
            self._key._value_buffer.seek(self._pos)
            data = self._key._value_buffer.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n


def _access_denied(environ: dict[str, Any], start_response: Callable[..., Any], reason: str) -> Iterable[bytes]:
    """S3's 403 AccessDenied. The body is read first: boto3 sends it whole before it reads the
    answer, and an unread body would break the connection instead of showing the 403."""
    log.info("S3 %s %s refused: %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), reason)
    stream = get_input_stream(environ)
    while stream.read(CHUNK):
        pass
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied'
        b"</Message><RequestId>keboola-emulator</RequestId><HostId>keboola-emulator</HostId></Error>"
    )
    start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class S3Side:
    """Owns the moto app and everything the API side needs from file storage (`--file-storage aws`)."""

    provider = "aws"
    region = REGION

    def __init__(self, faults: Faults, stats: Stats, mirror_dir: Path | None) -> None:
        self._faults = faults
        self._stats = stats
        self._mirror = mirror_dir
        self._mirror_lock = threading.Lock()
        self.endpoint = ""  # set once the server listens
        # Set by the server: why a write must be refused 403 (uploads.refusal), None to allow it.
        self.policy: Callable[[dict[str, Any]], str | None] | None = None
        self.app = create_backend_app("s3")
        if FILES_BUCKET not in backend().buckets:
            backend().create_bucket(FILES_BUCKET, REGION)
        if self._mirror is not None:
            self._reseed()

    # -- WSGI ---------------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        _path_style(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        self._stats.count_s3(method)
        reason = self.policy(environ) if self.policy is not None else None
        if reason is not None:
            return _access_denied(environ, start_response, reason)
        if method in ("PUT", "POST"):
            environ["wsgi.input"] = ThrottledInput(
                environ["wsgi.input"], self._faults.bandwidth, self._stats.add_s3_bytes
            )
        status_holder: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_holder.append(status)
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        if int(environ.get("CONTENT_LENGTH") or 0) >= BIG_BODY:
            # moto/werkzeug leave the request body in reference cycles; without a collection each
            # multi-MB part stays in RAM until the cyclic GC happens to run (RSS grew with file size).
            # The cycles are young: collecting generations 0-1 frees them as well as a full collection
            # does, for ~1 ms instead of ~60 ms per part (a full one made S3 ingest CPU-bound).
            result = list(result)
            gc.collect(1)
        if self._mirror is not None and method in ("PUT", "POST", "DELETE"):
            body = b"".join(result)  # moto's responses are small XML documents
            if status_holder and status_holder[0][:1] == "2":
                self._mirror_after(method, environ)
            return [body]
        return result

    # -- objects ------------------------------------------------------------------------------
    def get_key(self, key: str) -> FakeKey | None:
        bucket = backend().buckets.get(FILES_BUCKET)
        if bucket is None:
            return None
        return bucket.keys.get(key)

    def open_object(self, key: str) -> io.BufferedReader | None:
        fake = self.get_key(key)
        if fake is None:
            return None
        return io.BufferedReader(ObjectReader(fake), buffer_size=CHUNK)

    def object_size(self, key: str) -> int | None:
        fake = self.get_key(key)
        return None if fake is None else int(fake.contentsize)

    def put_object_from_file(self, key: str, path: Path) -> int:
        """Store a local file (an export) as an object without loading it into memory."""
        fake = backend().put_object(FILES_BUCKET, key, b"")
        with fake.lock, open(path, "rb") as src:
            shutil.copyfileobj(src, fake._value_buffer, CHUNK)
            size = fake._value_buffer.tell()
        fake.contentsize = size
        fake._etag = None  # recomputed lazily from the buffer
        self._mirror_key(key)
        return size

    def put_bytes(self, key: str, data: bytes) -> None:
        backend().put_object(FILES_BUCKET, key, data)
        self._mirror_key(key)

    def delete_prefix(self, prefix: str) -> None:
        bucket = backend().buckets.get(FILES_BUCKET)
        if bucket is None:
            return
        for name in [k for k in list(bucket.keys.keys()) if k.startswith(prefix)]:
            backend().delete_object(FILES_BUCKET, name)
            self._unmirror_key(name)

    def presigned_get(self, key: str, expires: int = 3600, *, public: bool = False) -> str:
        """§5.1 `url`: a signed GET valid 1 h, against the emulator's own S3 port.

        `public` signs the URL a real stack gives (`https://<bucket>.s3.<region>.amazonaws.com/…`),
        for a client that reached the API through a TLS front and will reach S3 the same way
        (routes.common.fronted). Signed with botocore's SigV4 query signer directly: a full boto3
        client would load the S3 service model (~14 MB of RSS) just to sign a URL.
        """
        base = f"https://{FILES_BUCKET}.s3.{REGION}.amazonaws.com" if public else f"{self.endpoint}/{FILES_BUCKET}"
        url = f"{base}/{quote(key, safe='/~')}"
        request = AWSRequest(method="GET", url=url)
        S3SigV4QueryAuth(_PRESIGN_CREDENTIALS, "s3", REGION, expires=expires).add_auth(request)
        return str(request.url)

    def signed_get(self, key: str, *, public: bool = False) -> str:
        return self.presigned_get(key, URL_SECONDS, public=public)

    @staticmethod
    def _credentials(file_id: int) -> dict[str, Any]:
        """§5.1 aws credentials scoped to one prepared file (uploads.py holds the rules the S3 side
        enforces for them)."""
        return credentials(file_id)

    def upload_fields(self, key: str, *, file_id: int, sliced: bool, encrypted: bool) -> dict[str, Any]:
        """§5.1 `uploadParams`."""
        params: dict[str, Any] = {
            "bucket": FILES_BUCKET,
            "key": key,
            "acl": "private",
            "credentials": self._credentials(file_id),
        }
        if encrypted:
            # §5.1: kbcstorage KeyErrors without it; literal value UNCONFIRMED (GO: AES256 or aws:kms);
            # the S3 side refuses an encrypted file's PutObject without it (uploads.refusal)
            params["x-amz-server-side-encryption"] = "AES256"
        return {"uploadParams": params}

    def read_fields(self, key: str, *, file_id: int, sliced: bool) -> dict[str, Any]:
        """§5.4 `credentials` + `s3Path`."""
        return {"credentials": self._credentials(file_id), "s3Path": {"bucket": FILES_BUCKET, "key": key}}

    def slice_url(self, key: str) -> str:
        return f"s3://{FILES_BUCKET}/{key}"

    def key_of_slice_url(self, url: str) -> str | None:
        prefix = f"s3://{FILES_BUCKET}/"
        return url[len(prefix) :] if url.startswith(prefix) else None

    def close(self) -> None:
        """moto lives in this process: nothing to stop."""

    # -- persistence --------------------------------------------------------------------------
    def _mirror_after(self, method: str, environ: dict[str, Any]) -> None:
        path = unquote(environ.get("PATH_INFO", ""))
        query = environ.get("QUERY_STRING", "")
        prefix = f"/{FILES_BUCKET}/"
        if not path.startswith(prefix):
            return
        key = path[len(prefix) :]
        if method == "DELETE" and "uploadId" not in query:
            self._unmirror_key(key)
        elif (method == "PUT" and "uploadId" not in query) or (method == "POST" and "uploadId=" in query):
            self._mirror_key(key)

    def _mirror_path(self, key: str) -> Path:
        assert self._mirror is not None
        target = (self._mirror / key).resolve()
        if not str(target).startswith(str(self._mirror.resolve()) + os.sep):
            raise ValueError(f"object key escapes the data dir: {key!r}")
        return target

    def _mirror_key(self, key: str) -> None:
        if self._mirror is None:
            return
        reader = self.open_object(key)
        if reader is None:
            return
        target = self._mirror_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part~")
        with self._mirror_lock, reader, open(tmp, "wb") as out:
            shutil.copyfileobj(reader, out, CHUNK)
        os.replace(tmp, target)

    def _unmirror_key(self, key: str) -> None:
        if self._mirror is None:
            return
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._mirror_path(key).unlink()

    def _reseed(self) -> None:
        assert self._mirror is not None
        self._mirror.mkdir(parents=True, exist_ok=True)
        count = 0
        for path in self._mirror.rglob("*"):
            if not path.is_file() or path.name.endswith(".part~"):
                continue
            key = path.relative_to(self._mirror).as_posix()
            fake = backend().put_object(FILES_BUCKET, key, b"")
            with fake.lock, open(path, "rb") as src:
                shutil.copyfileobj(src, fake._value_buffer, CHUNK)
                fake.contentsize = fake._value_buffer.tell()
            fake._etag = None
            count += 1
        log.info("re-seeded %d S3 objects from %s", count, self._mirror)
