"""A front door before a cloud emulator child: count and throttle uploads, check, stream through.

Clients of `--file-storage azure|gcp` talk to this WSGI app, not to Azurite / gcp-storage-emulator
directly, so the emulator's own knobs reach the cloud traffic too: bytes and requests count in
`/_emulator/stats` (`s3_put_bytes`, `s3_requests`), `--s3-bandwidth-mbps` caps uploads, and a fault
can lose the answer of an upload request the child did store. The scripted cloud fault
(`FaultSettings.cloud_fault`: the N-th request matching a pattern is lost, failed, refused, gone or
stalled) is applied here for both clouds. Subclasses say who may do what (`authorize`), which
requests a fault hits (`lose_answer`), what the cloud answers by itself (`known_answer`, e.g. a
finished GCS session) and how errors look on that cloud.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.wsgi import get_input_stream

from keboola_emulator.childproc import HOST
from keboola_emulator.faults import Faults, Stats, ThrottledInput

CHUNK = 1024 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Front:
    """Pass-through by default; see the module docstring."""

    fault_kind = "cloud_upload"
    refuse_status = 403  # the answer to an expired credential (the `refuse` cloud fault)

    def __init__(self, child_port: int, faults: Faults, stats: Stats) -> None:
        self._child_port = child_port
        self._faults = faults
        self._stats = stats
        self.endpoint = ""  # http://127.0.0.1:P once the server listens

    # -- what subclasses decide ------------------------------------------------------------------
    def authorize(
        self, method: str, path: str, query: dict[str, list[str]], raw_uri: str, environ: dict[str, Any], body: Any
    ) -> tuple[Any, str]:
        """The body to forward and the URI to forward it to; raise Denied to refuse."""
        return body, raw_uri

    def lose_answer(self, method: str, query: dict[str, list[str]]) -> bool:
        """Should this request be stored by the child and then answered 503 (a fault)?"""
        return False

    def known_answer(self, method: str, query: dict[str, list[str]]) -> tuple[int, bytes] | None:
        """An answer the cloud gives without the child (status, JSON body), or None to forward."""
        return None

    def keeps_answer(self, method: str, query: dict[str, list[str]]) -> bool:
        """Should the child's answer to this request be read whole and shown to `answered`?"""
        return False

    def answered(self, query: dict[str, list[str]], status: int, data: bytes) -> None:
        """The child's answer to a request `keeps_answer` chose."""

    def forget_session(self, query: dict[str, list[str]]) -> None:
        """The `gone` cloud fault: the upload session this request names no longer exists."""

    def error(self, start_response: Callable[..., Any], status: int, message: str) -> list[bytes]:
        body = message.encode()
        start_response(f"{status} Error", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def public_location(self, location: str) -> str:
        return location

    # -- the mechanics -------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        parts = urlsplit(raw_uri)
        query = parse_qs(parts.query)
        self._stats.count_s3(method)
        body: Any = get_input_stream(environ)  # bounded by Content-Length (the raw socket is not)
        if method in ("PUT", "POST"):
            body = ThrottledInput(body, self._faults.bandwidth, self._stats.add_s3_bytes)
        try:
            body, forward_uri = self.authorize(method, parts.path, query, raw_uri, environ, body)
        except Denied as denied:
            return self.error(start_response, denied.status, str(denied))
        if self.lose_answer(method, query):
            for _ in self._forward(method, forward_uri, environ, body, lambda *args: None, query):
                pass  # the child stores it; the client never hears
            self._stats.count_fault(self.fault_kind)
            return self.error(start_response, 503, "injected by keboola-emulator")
        kind = self._faults.cloud_fault_for(f"{method} {raw_uri}")
        if kind:
            self._stats.count_fault(f"cloud_{kind}")
            return self._inject(kind, method, query, forward_uri, environ, body, start_response)
        known = self.known_answer(method, query)
        if known is not None:
            _drain(body)
            status, data = known
            start_response(
                f"{status} {http.client.responses.get(status, '')}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
            )
            return [data]
        return self._forward(method, forward_uri, environ, body, start_response, query)

    def _inject(
        self,
        kind: str,
        method: str,
        query: dict[str, list[str]],
        uri: str,
        environ: dict[str, Any],
        body: Any,
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        """The scripted cloud fault `kind` (see FaultSettings.cloud_fault) on this request."""
        if kind in ("lose", "stall"):
            answer: dict[str, Any] = {}
            data = b"".join(
                self._forward(
                    method, uri, environ, body, lambda status, headers: answer.update(s=status, h=headers), query
                )
            )
            if kind == "lose":
                return self.error(start_response, 503, "answer lost (injected by keboola-emulator)")
            threading.Event().wait(self._faults.current().cloud_stall_seconds)  # the client gives up meanwhile
            start_response(answer["s"], answer["h"])
            return [data]
        _drain(body)
        if kind == "gone":
            self.forget_session(query)
            return self.error(start_response, 410, "The upload session has expired (injected by keboola-emulator)")
        if kind == "refuse":
            return self.error(
                start_response, self.refuse_status, "The credentials have expired (injected by keboola-emulator)"
            )
        return self.error(start_response, 503, "injected by keboola-emulator")

    def _forward(
        self,
        method: str,
        uri: str,
        environ: dict[str, Any],
        body: Any,
        start_response: Callable[..., Any],
        query: dict[str, list[str]] | None = None,
    ) -> Iterator[bytes]:
        headers = {
            key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = environ[key]
        for hop in [h for h in headers if h.lower() in HOP_BY_HOP]:
            del headers[hop]
        if isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        elif method not in ("PUT", "POST"):
            body = None
        elif not headers.get("Content-Length"):
            body = read_all(body, None)  # a chunked request: the child needs a length
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(HOST, self._child_port, timeout=600)
        conn.request(method, uri, body=body, headers=headers)
        resp = conn.getresponse()
        out_headers = []
        for key, value in resp.getheaders():
            if key.lower() in HOP_BY_HOP:
                continue
            if key.lower() == "location":
                value = self.public_location(value)
            out_headers.append((key, value))
        start_response(f"{resp.status} {resp.reason}", out_headers)
        if query is not None and self.keeps_answer(method, query):
            try:
                data = resp.read()
            finally:
                conn.close()
            self.answered(query, resp.status, data)
            return iter([data])
        return _stream(conn, resp)


def read_all(stream: Any, length: int | None) -> bytes:
    out = bytearray()
    while length is None or len(out) < length:
        chunk = stream.read(CHUNK if length is None else min(CHUNK, length - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _drain(body: Any) -> None:
    """Read a request's body to its end, so a client still sending it hears the answer."""
    if not isinstance(body, bytes):
        while body.read(CHUNK):
            pass


def _stream(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> Iterator[bytes]:
    try:
        while chunk := resp.read(CHUNK):
            yield chunk
    finally:
        conn.close()
