"""Fault injection and counters: the knobs reliability tests and benchmarks turn.

Faults never apply to `/_emulator/*` (the control plane) — a test must always be able to turn
them off again. The knobs are read on every request, so a POST to `/_emulator/faults` takes
effect at once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any, BinaryIO

# Chosen for injected job failures; the real service's code for a transient internal job
# error is UNCONFIRMED (keboola-storage-api.md has none) — documented in docs/emulator.md.
JOB_FAILURE_CODE = "storage.jobs.internalError"
JOB_FAILURE_MESSAGE = (
    "Internal error occurred while processing the job. Please try again. (injected by keboola-emulator)"
)

# The kinds of the scripted cloud fault (FaultSettings.cloud_fault); "" = none.
CLOUD_FAULTS = frozenset({"", "lose", "fail", "refuse", "gone", "stall"})


@dataclass
class FaultSettings:
    fail_rate: float = 0.0  # fraction of /v2/storage requests answered 500/502/503
    rate_limit_rate: float = 0.0  # fraction answered 429 + Retry-After: 1
    drop_rate: float = 0.0  # fraction whose connection is closed without a response
    latency_ms: int = 0  # delay added before every API request is handled
    job_seconds: float = 0.0  # minimum duration of every job
    fail_jobs: float = 0.0  # fraction of jobs that end in `error` with JOB_FAILURE_CODE
    s3_bandwidth_mbps: float = 0.0  # cap on S3 upload throughput, megabits/s; 0 = unlimited
    # Extensions beyond issue 2's list:
    lost_response_rate: float = 0.0  # request fully processed, then the connection closed (§9.4)
    paths: tuple[str, ...] = ()  # request faults only hit paths containing one of these; () = all
    # --file-storage azure|gcp: fraction of Azure Put Block / GCS resumable-chunk requests the front
    # door lets the cloud emulator store and then answers 503 (a lost answer: re-send or resume)
    cloud_chunk_fail_rate: float = 0.0
    # The error code an injected job failure carries ("" = JOB_FAILURE_CODE): tests give one Keboola never
    # documented, to prove a client does not loop on codes it cannot classify.
    fail_jobs_code: str = ""
    # --file-storage azure|gcp, run time only: one scripted fault at the cloud front door. The
    # `cloud_fault_nth`-th request (1-based, counted from when the rule is set) whose "METHOD URI" contains
    # `cloud_fault_match`, and the `cloud_fault_times - 1` matching ones after it, get `cloud_fault`:
    # lose (stored, answered 503), fail (not stored, 503), refuse (an expired SAS / token: Azure 403
    # AuthenticationFailed, GCS 401), gone (a GCS session forgotten, 410), stall (stored, the answer held
    # `cloud_stall_seconds`: a client timeout). Counted as `cloud_<kind>` in faults_injected.
    cloud_fault: str = ""
    cloud_fault_match: str = ""
    cloud_fault_nth: int = 1
    cloud_fault_times: int = 1
    cloud_stall_seconds: float = 0.0

    def applies_to(self, path: str) -> bool:
        return not self.paths or any(p in path for p in self.paths)

    def validate(self) -> None:
        for name in (
            "fail_rate",
            "rate_limit_rate",
            "drop_rate",
            "fail_jobs",
            "lost_response_rate",
            "cloud_chunk_fail_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.cloud_fault not in CLOUD_FAULTS:
            raise ValueError(f"cloud_fault must be one of {sorted(CLOUD_FAULTS)}, got {self.cloud_fault!r}")
        if self.cloud_fault_nth < 1 or self.cloud_fault_times < 1:
            raise ValueError("cloud_fault_nth and cloud_fault_times must be at least 1")
        for name in ("latency_ms", "job_seconds", "s3_bandwidth_mbps", "cloud_stall_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")


def _paths(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value] if value else []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


_FIELD_TYPES: dict[str, Any] = {
    f.name: (int if f.type == "int" else _paths if f.name == "paths" else str if f.type == "str" else float)
    for f in fields(FaultSettings)
}


class Faults:
    """Thread-safe holder of the current FaultSettings plus the random draws that use them."""

    def __init__(self, initial: FaultSettings, seed: int | None = None) -> None:
        initial.validate()
        self._initial = FaultSettings(**asdict(initial))
        self._current = FaultSettings(**asdict(initial))
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._cloud_matches = 0  # requests the scripted cloud fault's pattern matched since it was set
        # Read per 1 MiB of every upload: the attribute, not a copy of all settings (`current()`).
        self.bandwidth = TokenBucket(lambda: self._current.s3_bandwidth_mbps)

    def current(self) -> FaultSettings:
        with self._lock:
            return FaultSettings(**asdict(self._current))

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(self.current())

    def merge(self, changes: dict[str, Any]) -> dict[str, Any]:
        """POST /_emulator/faults: unknown keys and bad values are rejected, nothing half-applied."""
        unknown = sorted(set(changes) - set(_FIELD_TYPES))
        if unknown:
            raise ValueError(f"unknown fault keys {unknown}; known: {sorted(_FIELD_TYPES)}")
        with self._lock:
            candidate = asdict(self._current)
            for key, value in changes.items():
                try:
                    candidate[key] = _FIELD_TYPES[key](value)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{key}: bad value {value!r} ({exc})") from exc
            settings = FaultSettings(**candidate)
            settings.validate()
            self._current = settings
            if any(key.startswith("cloud_fault") for key in changes):
                self._cloud_matches = 0  # a new rule counts its requests afresh
            return _jsonable(settings)

    def reset(self) -> dict[str, Any]:
        """Back to no faults at all (not to the CLI flags): tests expect a clean slate."""
        with self._lock:
            self._current = FaultSettings()
            self._cloud_matches = 0
            return _jsonable(self._current)

    def cloud_fault_for(self, request_line: str) -> str:
        """The scripted cloud fault this request ("METHOD URI") gets, or "" (see FaultSettings)."""
        with self._lock:
            rule = self._current
            if not rule.cloud_fault or rule.cloud_fault_match not in request_line:
                return ""
            self._cloud_matches += 1
            hit = rule.cloud_fault_nth <= self._cloud_matches < rule.cloud_fault_nth + rule.cloud_fault_times
            return rule.cloud_fault if hit else ""

    def draw(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate

    def choice(self, options: tuple[int, ...]) -> int:
        with self._lock:
            return self._random.choice(options)


def _jsonable(settings: FaultSettings) -> dict[str, Any]:
    out = asdict(settings)
    out["paths"] = list(settings.paths)
    return out


class TokenBucket:
    """A global byte-rate limiter shared by all S3 uploads (the cap is for the whole emulator)."""

    def __init__(self, rate_mbps: Any) -> None:
        self._rate_mbps = rate_mbps
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = time.monotonic()

    def consume(self, nbytes: int) -> None:
        mbps = self._rate_mbps()
        if mbps <= 0 or nbytes <= 0:
            return
        rate = mbps * 125_000.0  # megabits/s -> bytes/s
        with self._lock:
            now = time.monotonic()
            self._tokens = min(rate * 0.25, self._tokens + (now - self._last) * rate)
            self._last = now
            self._tokens -= nbytes
            wait = -self._tokens / rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)  # throttling an upload is the point of this knob


class ThrottledInput:
    """Wraps a WSGI input stream: counts the bytes read and enforces the bandwidth cap."""

    def __init__(self, stream: BinaryIO, bucket: TokenBucket, on_bytes: Any) -> None:
        self._stream = stream
        self._bucket = bucket
        self._on_bytes = on_bytes

    def _account(self, data: bytes) -> bytes:
        if data:
            self._on_bytes(len(data))
            self._bucket.consume(len(data))
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            out = bytearray()
            while chunk := self.read(1 << 20):
                out += chunk
            return bytes(out)
        return self._account(self._stream.read(min(size, 1 << 20)))

    def readline(self, size: int = -1) -> bytes:
        return self._account(self._stream.readline(size))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.readline, b"")


class Stats:
    """Counters tests assert on (GET /_emulator/stats)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.jobs: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.files_prepared = 0
        self.s3_put_bytes = 0
        self.s3_requests: Counter[str] = Counter()

    def count_request(self, key: str) -> None:
        with self._lock:
            self.requests[key] += 1

    def count_job(self, operation: str) -> None:
        with self._lock:
            self.jobs[operation] += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults_injected[kind] += 1

    def count_file_prepared(self) -> None:
        with self._lock:
            self.files_prepared += 1

    def count_s3(self, method: str) -> None:
        with self._lock:
            self.s3_requests[method] += 1

    def add_s3_bytes(self, n: int) -> None:
        with self._lock:
            self.s3_put_bytes += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "jobs": dict(self.jobs),
                "files_prepared": self.files_prepared,
                "s3_put_bytes": self.s3_put_bytes,
                "s3_requests": dict(self.s3_requests),
                "faults_injected": dict(self.faults_injected),
            }
