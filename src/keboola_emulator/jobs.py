"""Background jobs (§6): 202 + job, then `waiting` -> `processing` -> `success` | `error`.

Jobs on the same table run one after another (§4.5 "Imports on the same table run one after
another"); jobs on different tables run in parallel on a small thread pool. The job_seconds and
fail_jobs faults are applied here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from keboola_emulator.errors import JobError, exception_id
from keboola_emulator.faults import JOB_FAILURE_CODE, JOB_FAILURE_MESSAGE, Faults, Stats
from keboola_emulator.model import Store, now

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]
EMPTY_METRICS = {
    "inCompressed": False,
    "inBytes": 0,
    "inBytesUncompressed": 0,
    "outCompressed": False,
    "outBytes": 0,
    "outBytesUncompressed": 0,
}


class JobRunner:
    def __init__(
        self, store: Store, faults: Faults, stats: Stats, workers: int = 8, settle_seconds: float = 1.0
    ) -> None:
        self._store = store
        self._faults = faults
        self._stats = stats
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._handlers: dict[str, Handler] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._done: dict[int, threading.Event] = {}
        self._stopping = threading.Event()
        # Waiting briefly for a fresh job before answering 202 keeps SDK clients fast: kbcstorage
        # polls at once and then sleeps 4 s, so a job that finished in 50 ms should be seen done.
        self._settle = settle_seconds

    def register(self, operation: str, handler: Handler) -> None:
        self._handlers[operation] = handler

    def submit(
        self,
        operation: str,
        *,
        table_id: str | None,
        params: dict[str, Any],
        source: dict[str, Any] | None,
        token_id: str,
        run_id: str | None,
        lock_key: str | None = None,
    ) -> dict[str, Any]:
        """Stores the job as `waiting`, queues it, and returns that first snapshot."""
        operation_params: dict[str, Any] = {"queue": "main", "params": params}
        if source is not None:
            operation_params["source"] = source
        job = self._store.insert_job(
            {
                "operation_name": operation,
                "table_id": table_id,
                "operation_params": operation_params,
                "created": now(),
                "metrics": EMPTY_METRICS,
                "run_id": run_id,
                "creator_token_id": token_id,
            }
        )
        self._stats.count_job(operation)
        done = self._queue(job["id"], operation, lock_key or table_id)
        done.wait(self._settle)
        return job

    def resume_unfinished(self) -> int:
        """After a restart with --data-dir, jobs that were waiting/processing run again."""
        jobs = self._store.unfinished_jobs()
        for job in jobs:
            self._store.update_job(job["id"], status="waiting", start_time=None)
            params = job["operation_params"]["params"]
            self._queue(job["id"], job["operation_name"], params.get("_lockKey") or job["table_id"])
        return len(jobs)

    def _queue(self, job_id: int, operation: str, lock_key: str | None) -> threading.Event:
        done = threading.Event()
        self._done[job_id] = done
        self._pool.submit(self._run, job_id, operation, lock_key, done)
        return done

    def _lock_for(self, key: str | None) -> threading.Lock | None:
        if key is None:
            return None
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _run(self, job_id: int, operation: str, lock_key: str | None, done: threading.Event) -> None:
        lock = self._lock_for(lock_key)
        try:
            if lock is not None:
                lock.acquire()
            try:
                self._execute(job_id, operation)
            finally:
                if lock is not None:
                    lock.release()
        finally:
            done.set()
            self._done.pop(job_id, None)

    def _execute(self, job_id: int, operation: str) -> None:
        if self._stopping.is_set():
            return
        self._store.update_job(job_id, status="processing", start_time=now())
        job = self._store.get_job(job_id)
        assert job is not None
        settings = self._faults.current()
        # The job_seconds fault: the job sits in `processing` first and does its work at the end, so
        # nothing it creates is visible before it is done. A shutdown meanwhile leaves it
        # `processing`; with --data-dir it runs again after the restart.
        if settings.job_seconds > 0 and self._stopping.wait(settings.job_seconds):
            return
        results: Any = None
        error: dict[str, Any] | None = None
        metrics: dict[str, Any] | None = None
        try:
            if self._faults.draw(settings.fail_jobs):
                self._stats.count_fault("fail_jobs")
                raise JobError(settings.fail_jobs_code or JOB_FAILURE_CODE, JOB_FAILURE_MESSAGE)
            outcome = self._handlers[operation](job)
            if isinstance(outcome, tuple):
                results, metrics = outcome
            else:
                results = outcome
        except JobError as exc:
            error = exc.as_job_error()
            results = exc.results
        except Exception as exc:  # a bug here must fail the job, not hang the client
            log.exception("job %s (%s) crashed", job_id, operation)
            error = {
                "code": "storage.internalError",
                "message": f"Internal error: {exc}",
                "exceptionId": exception_id(),
                "contextParams": None,
                "uuid": None,
            }
        changes: dict[str, Any] = {"status": "error" if error else "success", "end_time": now(), "results": results}
        if error:
            changes["error"] = error
        if metrics:
            changes["metrics"] = {**EMPTY_METRICS, **metrics}
        self._store.update_job(job_id, **changes)

    def shutdown(self) -> None:
        self._stopping.set()
        # Running loads are abandoned: their transaction rolls back and, with --data-dir, the job
        # (still `processing`) runs again after a restart.
        self._pool.shutdown(wait=False, cancel_futures=True)
