"""S3 clients are lent out per upload and sign with that upload's own credentials (issue 18.1: Keboola
hands out new credentials for every file, and a new boto3 client per file was most of the daemon's CPU
with many small files). A plain HTTP server stands in for S3 and records who signed each request."""

from __future__ import annotations

import http.server
import re
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from keboola_sync.config import UploadConfig
from keboola_sync.storage.s3upload import S3Uploader


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every PUT 200 and records the access key and session token that signed it."""

    signed: ClassVar[list[tuple[str, str, str]]] = []
    protocol_version = "HTTP/1.1"

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        type(self).signed.append((self.path, key.group(1) if key else "", self.headers.get("X-Amz-Security-Token", "")))
        self.send_response(200)
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _prepared(name: str) -> dict[str, Any]:
    return {
        "provider": "aws",
        "region": "us-east-1",
        "uploadParams": {
            "bucket": "files",
            "key": f"exp-15/{name}",
            "credentials": {"AccessKeyId": f"KEY-{name}", "SecretAccessKey": "secret", "SessionToken": f"T-{name}"},
        },
    }


def test_each_upload_signs_with_its_own_credentials_on_a_reused_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.server_port}")
        uploader = S3Uploader(request_timeout=5, upload=UploadConfig(), progress_seconds=5, abandon=threading.Event())
        built: list[str] = []
        new_client = uploader._new_client
        monkeypatch.setattr(
            uploader, "_new_client", lambda region, creds: built.append(region) or new_client(region, creds)
        )
        spool = tmp_path / "a.csv"
        spool.write_bytes(b"id\n1\n")
        for name in ("a.csv", "b.csv", "c.csv"):
            uploader.upload_file(_prepared(name), spool, spool.stat().st_size, name)
        assert [(path.rsplit("/", 1)[-1], key, token) for path, key, token in _Recorder.signed] == [
            ("a.csv", "KEY-a.csv", "T-a.csv"),
            ("b.csv", "KEY-b.csv", "T-b.csv"),
            ("c.csv", "KEY-c.csv", "T-c.csv"),
        ]
        assert built == ["us-east-1"]  # one client, lent three times
    finally:
        server.shutdown()
        server.server_close()
