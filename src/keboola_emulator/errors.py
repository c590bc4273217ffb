"""Storage API errors as exceptions, so route code can `raise` and one handler renders the body.

Body shape per keboola-storage-api.md §7.1: {"error", "code", "exceptionId", "status": "error"}.
"""

from __future__ import annotations

import uuid
from typing import Any

from keboola_emulator.tokens import PROJECT_ID


def exception_id() -> str:
    """Mimics the real `exceptionId` form (§7.1: `com-keboola-<stack>-connection-<hex>`)."""
    return f"keboola-emulator-{uuid.uuid4().hex}"


class ApiError(Exception):
    """An error answered synchronously with an HTTP status and the Storage JSON body."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "code": self.code,
            "exceptionId": exception_id(),
            "status": "error",
            **self.extra,
        }


class JobError(Exception):
    """A failure inside an asynchronous job: it ends the job in `error` (§6.1), never an HTTP error."""

    def __init__(self, code: str, message: str, results: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.results = results

    def as_job_error(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "exceptionId": exception_id(),
            "contextParams": None,
            "uuid": str(uuid.uuid4()),
        }


def not_found(message: str = "Not found", code: str = "notFound") -> ApiError:
    return ApiError(404, code, message)


def bucket_not_found(bucket_id: str) -> ApiError:
    # §4.1 message shape
    return ApiError(
        404, "storage.buckets.notFound", f'The bucket "{bucket_id}" was not found in the project "{PROJECT_ID}"'
    )


def table_not_found(table_id: str) -> ApiError:
    bucket_id, _, name = table_id.rpartition(".")
    return ApiError(
        404,
        "storage.tables.notFound",
        f'The table "{name}" was not found in the bucket "{bucket_id}" in the project "{PROJECT_ID}"',
    )
