"""Is there a Keboola Storage API at this URL? One quick request that tells the three failures apart.

Why: when the stack URL is wrong, a retried token check says nothing useful for a minute (seven near-identical
`HTTPConnectionPool...` lines). A person at 2 a.m. needs one sentence: the name does not resolve, nothing
listens there, it does not answer in time, or something answers that is not Keboola. The index
`GET /v2/storage` answers without a valid token (§2.2: `{"api": "storage", "version": "v2", ...}`), so it
separates "not Keboola" from "Keboola refused the token" before the token is ever sent.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

PROBE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    problem: str = ""  # one sentence, naming the URL, when not ok


def _unreachable(url: str, exc: requests.RequestException) -> str:
    host = urlsplit(url).hostname or url
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return f"{url} did not answer within {PROBE_TIMEOUT_SECONDS:.0f} s (a firewall, a VPN, or the wrong host?)"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"{url}: the TLS (https) handshake failed ({type(exc).__name__}); check the URL and any proxy"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return f"the host name {host} does not resolve (a typo in the stack URL, or no DNS/network)"
        if isinstance(cause, ConnectionRefusedError):
            return f"nothing listens at {url} (connection refused); check the host and port"
        cause = cause.__cause__ or cause.__context__
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return f"the host name {host} does not resolve (a typo in the stack URL, or no DNS/network)"
    if "Connection refused" in text:
        return f"nothing listens at {url} (connection refused); check the host and port"
    return f"cannot connect to {url} ({type(exc).__name__})"


def probe_stack(url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> ProbeResult:
    """GET <url>/v2/storage without a token: is it reachable, and is it Keboola's Storage API?"""
    index = url.rstrip("/") + "/v2/storage?exclude=components"
    try:
        response = requests.get(index, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        return ProbeResult(False, _unreachable(url, exc))
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("api") == "storage":
        return ProbeResult(True)
    if response.status_code == 503:
        return ProbeResult(False, f"{url} answers 503: Keboola may be in maintenance; try again later")
    return ProbeResult(
        False,
        f"{url} answers (HTTP {response.status_code}) but is not a Keboola Storage API; "
        "use your project's stack URL, e.g. https://connection.keboola.com",
    )
