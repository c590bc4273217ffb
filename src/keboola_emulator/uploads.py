"""Upload credentials scoped like Keboola's (§5.1, §12): write-only for exactly the prepared key.

Real `files/prepare` credentials are short-lived AWS federation tokens whose policy allows PutObject
(and so multipart uploads) and PutObjectAcl on the prepared key only (a sliced file: keys under its
prefix); the bucket policy refuses a PutObject of an encrypted file's key without
`x-amz-server-side-encryption: AES256` (403 `AccessDenied`, PHPT `File/AwsFileTest.php`). moto checks
neither, so the S3 side asks `refusal()` before handing a write to moto.

Each prepared file gets its own access key id, `ASIAKBCEMU` + the file id in 10 digits, so the
credential in a request's signature names the file it may write. Reads are not restricted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote

# The one S3 bucket prepared files go to (§5.1 example bucket name); s3.py serves it, this module scopes
# the credentials to its keys.
FILES_BUCKET = "kbc-sapi-files"
SSE = "AES256"  # the x-amz-server-side-encryption value files/prepare hands out (§5.1, UNCONFIRMED)
_KEY_PREFIX = "ASIAKBCEMU"
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


@dataclass(frozen=True)
class UploadGrant:
    """What one prepared file's credentials may write."""

    key: str  # the prepared key; for a sliced file the prefix of its slices and manifest
    sliced: bool
    encrypted: bool

    def covers(self, key: str) -> bool:
        return key.startswith(self.key) if self.sliced else key == self.key


def credentials(file_id: int) -> dict[str, Any]:
    """§5.1 aws credentials of one file: 12 h, an access key id that names the file."""
    expiration = (datetime.now(UTC) + timedelta(hours=12)).replace(microsecond=0).isoformat()
    return {
        "AccessKeyId": f"{_KEY_PREFIX}{int(file_id):010d}",
        "SecretAccessKey": "keboola-emulator-secret",
        "SessionToken": "keboola-emulator-session-token",
        "Expiration": expiration,
    }


def file_id_of(access_key: str) -> int | None:
    rest = access_key[len(_KEY_PREFIX) :]
    if not access_key.startswith(_KEY_PREFIX) or len(rest) != 10 or not rest.isdigit():
        return None
    return int(rest)


def grant_of(file: dict[str, Any] | None) -> UploadGrant | None:
    if file is None:
        return None
    return UploadGrant(key=file["s3_key"], sliced=bool(file["is_sliced"]), encrypted=bool(file["is_encrypted"]))


def refusal(environ: dict[str, Any], grant_for: Callable[[int], UploadGrant | None]) -> str | None:
    """Why this S3 request must be answered 403 AccessDenied, or None to let moto handle it."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method not in ("PUT", "POST", "DELETE"):
        return None
    path = unquote(environ.get("PATH_INFO", ""))
    bucket, _, key = path.lstrip("/").partition("/")
    if bucket != FILES_BUCKET or not key:
        return "upload credentials write objects of the files bucket only"
    file_id = file_id_of(_access_key(environ))
    grant = grant_for(file_id) if file_id is not None else None
    if grant is None:
        return "not signed with the upload credentials of a prepared file"
    if not grant.covers(key):
        return f"the credentials of file {file_id} may write {grant.key!r} only"
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if method == "DELETE":
        return "upload credentials cannot delete or abort (PutObject and PutObjectAcl only)"
    starts_object = (method == "PUT" and not {"uploadId", "partNumber", "acl"} & query.keys()) or (
        method == "POST" and "uploads" in query
    )
    if starts_object and grant.encrypted and environ.get("HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION") != SSE:
        return f"an encrypted file's key needs the header x-amz-server-side-encryption: {SSE}"
    return None


def _access_key(environ: dict[str, Any]) -> str:
    """The access key id of a SigV4 request: Authorization header or presigned query."""
    found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if found:
        return found.group(1)
    credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [""])[0]
    return credential.split("/", 1)[0]
