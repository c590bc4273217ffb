"""What an edited config.yaml or .env does to the running daemon (and what SIGHUP asks for).

`Reloader.poll` is called by the daemon's main loop: every few seconds it stats both files (`FileWatch`).
A changed config.yaml is loaded exactly as at start-up; if it is valid, the new configuration is swapped
into `LiveConfig` whole, the rooms that hold settings of their own (logging, storage, the watcher) are
told, files whose verdict depended on a changed key are judged again, and one INFO line lists the keys.
Keys that need a restart get one WARNING; an invalid file gets one ERROR and changes nothing.

A changed KBC_STORAGE_API_TOKEN in .env is checked with tokens/verify on a thread of its own (Keboola may
be slow; the loop must not wait) and used for every new request only once Keboola accepted it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from .config import env_file_token
from .errors import ConfigError
from .live import FILES_POLL_SECONDS, ConfigFiles, LiveConfig, Reload, plan, show, to_judge_again
from .logs import add_secret, reconfigure_logging
from .state import Ledger, LedgerState
from .storage import Abandoned, Storage, StorageError, TokenRejected

if TYPE_CHECKING:
    from .watcher import Watcher

log = logging.getLogger("keboola_sync.daemon")

# A new token Keboola could not be asked about (no answer) is asked about again after this long.
TOKEN_RECHECK_SECONDS = 30.0
_MISSING = object()


class Busy(Protocol):
    """The scheduler, as far as a reload needs it: the paths waiting or loading now are not judged again,
    and the number of load workers."""

    def known(self) -> set[str]: ...

    def set_workers(self, count: int) -> None: ...


class Reloader:
    """Made by `Daemon.run` once the rooms exist; `poll` and `reload` run on the daemon's main loop only,
    the token check on its own thread (see the module docstring)."""

    def __init__(
        self,
        live: LiveConfig,
        files: ConfigFiles,
        *,
        storage: Storage,
        ledger: Ledger,
        scheduler: Busy,
        watcher: Watcher | None,
        rescan_now: Callable[[], None],
    ) -> None:
        self.live = live
        self.files = files
        self._storage = storage
        self._ledger = ledger
        self._scheduler = scheduler
        self._watcher = watcher
        self._rescan_now = rescan_now
        self._config_watch = files.config_watch
        self._env_watch = files.env_watch
        self._next_look = 0.0
        self._error: str | None = None  # the configuration error last logged, while the file still has it
        self._pending_restart: dict[str, object] = {}  # restart-only keys already warned about, with their value
        self._swap_lock = threading.Lock()  # the token thread and the loop both swap the live config
        self._token_thread: threading.Thread | None = None
        self._token_recheck_at: float | None = None
        self._retry_failed = threading.Event()  # a new token was accepted: failed loads go again now
        self._file_token = files.env_token

    # -- the loop's entry points ---------------------------------------------------------------------

    def poll(self, now: float) -> None:
        """Called on every turn of the main loop; looks at the files every FILES_POLL_SECONDS."""
        if self._retry_failed.is_set():
            self._retry_failed.clear()
            self._judge_again(set(), retry_failed=True)
        if now < self._next_look:
            return
        self._next_look = now + FILES_POLL_SECONDS
        env_changed = self._env_watch.changed()
        config_changed = self._config_watch.changed()
        if config_changed or env_changed:
            self.reload(None, said_already_ok=not config_changed)
        recheck = self._token_recheck_at is not None and time.monotonic() >= self._token_recheck_at
        if env_changed or recheck:
            self.check_token(force=recheck)

    def reload(self, signal_name: str | None, *, said_already_ok: bool = False) -> None:
        """Load config.yaml (and .env) again and apply what changed. `signal_name`: SIGHUP asked for it,
        so even "nothing changed" is said. `said_already_ok`: only .env changed, so an error config.yaml
        still has was logged already and is not logged again."""
        if signal_name is not None:
            self._config_watch.settle()
        try:
            loaded = self.files.load()
        except ConfigError as exc:
            text = str(exc) if str(exc).endswith(".") else f"{exc}."
            if not (said_already_ok and text == self._error):
                log.error(
                    "configuration error in %s: %s The running configuration stays until the file is fixed",
                    self.files.config_path,
                    text,
                )
            self._error = text
            return
        was_invalid, self._error = self._error is not None, None
        with self._swap_lock:
            running = self.live.config
            change = plan(running, loaded)
            if change.changed:
                self.live.swap(change.applied)
        if change.changed:
            self._apply(change)
            log.info(
                "configuration reloaded from %s: %s",
                self.files.config_path,
                ", ".join(f"{key}={show(value)}" for key, value in change.changed.items()),
            )
        elif signal_name is not None or was_invalid:
            # Said on request, and when a file with an error was put back as it runs (the error is over).
            prefix = f"{signal_name}: " if signal_name else ""
            log.info("%sconfiguration reloaded from %s: nothing changed", prefix, self.files.config_path)
        self._warn_restart(change.restart)

    # -- applying a change ---------------------------------------------------------------------------

    def _apply(self, change: Reload) -> None:
        new, keys = change.applied, set(change.changed)
        if any(key.startswith("logging.") and key != "logging.progress_seconds" for key in keys):
            reconfigure_logging(new.logging)
        self._storage.use_settings(
            keboola=new.keboola, retry=new.retry, upload=new.upload, progress_seconds=new.logging.progress_seconds
        )
        if "upload.concurrency" in keys:
            self._scheduler.set_workers(new.upload.concurrency)
        if self._watcher is not None and keys & {"watch.observer", "watch.polling_interval_seconds"}:
            self._watcher.reconfigure(new.watch.observer, new.watch.polling_interval_seconds)
        self._judge_again(keys)
        if any(key.startswith(("watch.", "mapping.", "csv.")) for key in keys):
            self._rescan_now()  # new ignore rules, extensions, intervals: look at the folder with them

    def _judge_again(self, keys: set[str], *, retry_failed: bool = False) -> None:
        """Forget the verdicts that depended on a changed key, so the next rescan judges those files again
        (a skip is marked pending, a failure is due now). `retry_failed`: a new token
        was accepted, so every failed load goes again now."""
        busy = self._scheduler.known()
        records = self._ledger.all()
        skipped, failed = to_judge_again(records, keys)
        if retry_failed:
            failed = [r for r in records if r.state == LedgerState.FAILED and not r.in_flight]
        for record in skipped:
            if record.path not in busy:
                self._ledger.judge_again(record.path)
        for record in failed:
            if record.path not in busy:
                self._ledger.record_failed(
                    record.path, record.table_id, record.seen, record.error or "", time.time(), record.retry_seconds
                )
        if skipped or failed:
            log.debug("judging %d skipped and %d failed file(s) again", len(skipped), len(failed))
            self._rescan_now()

    def _warn_restart(self, restart: dict[str, object]) -> None:
        """One WARNING per new value of a restart-only key; a key set back to its running value is forgotten."""
        new = [key for key, value in restart.items() if self._pending_restart.get(key, _MISSING) != value]
        self._pending_restart = dict(restart)
        if new:
            log.warning(
                "%s changed in %s: applied only after a restart of keboola-sync; until then the running value stays",
                ", ".join(new),
                self.files.config_path,
            )

    # -- the token -----------------------------------------------------------------------------------

    def check_token(self, *, force: bool = False) -> None:
        """A changed .env: if its KBC_STORAGE_API_TOKEN is new, have Keboola verify it (on a thread)."""
        if self._token_thread is not None and self._token_thread.is_alive():
            self._token_recheck_at = time.monotonic() + FILES_POLL_SECONDS  # look again when it is done
            return
        self._token_recheck_at = None
        try:
            token = env_file_token(self.files.env_file)
        except ConfigError as exc:
            log.error("%s; keeping the token in use", str(exc).rstrip("."))
            return
        if token is None or (token == self._file_token and not force):
            self._file_token = token
            return
        self._file_token = token
        if token == self.live.config.token:
            return
        add_secret(token)  # before anything can print it
        self._token_thread = threading.Thread(target=self._use_token, args=(token,), name="token-check", daemon=True)
        self._token_thread.start()

    def _use_token(self, token: str) -> None:
        env = self.files.env_file
        try:
            info = self._storage.use_token(token)
        except TokenRejected as exc:
            log.error(
                "the new KBC_STORAGE_API_TOKEN in %s was refused by Keboola (%s); still using the previous token."
                " Put a valid token in %s",
                env,
                exc.code or exc.status or "401",
                env,
            )
            return
        except StorageError as exc:
            log.warning(
                "cannot check the new KBC_STORAGE_API_TOKEN in %s with Keboola (%s); still using the previous"
                " token, asking again in %.0f s",
                env,
                exc,
                TOKEN_RECHECK_SECONDS,
            )
            self._token_recheck_at = time.monotonic() + TOKEN_RECHECK_SECONDS
            return
        except Abandoned:
            return
        with self._swap_lock:
            self.live.swap(replace(self.live.config, token=token))
        log.info(
            "KBC_STORAGE_API_TOKEN changed in %s: Keboola accepted the new token (project %s, %s); new requests use it",
            env,
            info.project_name,
            info.project_id,
        )
        self._retry_failed.set()
