"""`make demo`: try keboola-sync without a Keboola account.

Starts the local Keboola Storage API emulator and the daemon watching ./demo-data (created with a sample
folder if missing). Drop CSV files into ./demo-data/<folder>/ and watch logs/demo.log; `make demo-status`
in another terminal shows what is synced. Ctrl-C stops both (exit 0). Nothing here needs a token: the
emulator accepts `local-dev-token`.

Why its own folder: `make run` syncs ./data (WATCH_DIR) to a real project; a demo sample written there
would be uploaded to it. Why a fixed port (DEMO_PORT, default 8765): the demo's ledger remembers the
emulator's tables across restarts, and `make demo-status` must find the same emulator. The demo's
config.yaml (.demo/config.yaml) is written only when missing, so edits to it survive a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# DEMO_DATA / DEMO_WORK move the demo elsewhere (the tests run it in a temporary folder).
DATA = Path(os.environ.get("DEMO_DATA", ROOT / "demo-data"))
WORK = Path(os.environ.get("DEMO_WORK", ROOT / ".demo"))
LOG = Path(os.environ.get("DEMO_LOG", ROOT / "logs" / "demo.log"))
CONFIG = WORK / "config.yaml"
PORT = int(os.environ.get("DEMO_PORT", "8765"))
S3_PORT = PORT + 1


def write_config_once() -> None:
    """The demo's config, written the first time only: the user may edit it to try live settings."""
    if CONFIG.exists():
        return
    CONFIG.write_text(
        f"keboola:\n  url: http://127.0.0.1:{PORT}\n"
        f"watch:\n  path: {DATA}\n  stable_seconds: 1\n  rescan_seconds: 30\n"
        f"state:\n  path: {WORK / 'state.db'}\n"
        f"upload:\n  spool_dir: {WORK / 'spool'}\n"
        f"daemon:\n  health_file: {WORK / 'health.json'}\n"
        f"logging:\n  file: {LOG}\n"
    )


def start_emulator() -> tuple[subprocess.Popen[str], dict[str, str]] | None:
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keboola_emulator",
            "--port",
            str(PORT),
            "--s3-port",
            str(S3_PORT),
            "--data-dir",
            str(WORK / "emulator"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emulator.stdout is not None
    ready = emulator.stdout.readline().split()
    if not ready or ready[0] != "READY":
        print(f"the emulator did not start (is port {PORT} or {S3_PORT} in use? set DEMO_PORT)", file=sys.stderr)
        emulator.terminate()
        return None
    return emulator, dict(part.split("=", 1) for part in ready[1:])


def stop(proc: subprocess.Popen[str] | None, sig: int) -> int:
    """Ends a child gracefully; its exit by our signal counts as a clean stop."""
    if proc is None:
        return 0
    if proc.poll() is None:
        proc.send_signal(sig)
    code = proc.wait(timeout=60)
    return 0 if code in (0, -sig, 128 + sig) else code


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    if not any(DATA.iterdir()):
        (DATA / "sales").mkdir()
        (DATA / "sales" / "orders.csv").write_text("id,customer,amount\n1,Alice,120\n2,Bob,80\n")
        print("created ./demo-data/sales/orders.csv as a sample")
    WORK.mkdir(parents=True, exist_ok=True)
    write_config_once()
    emulator: subprocess.Popen[str] | None = None
    daemon: subprocess.Popen[str] | None = None
    try:
        started = start_emulator()
        if started is None:
            return 2
        emulator, urls = started
        print(f"emulator: {urls['api']} (S3 {urls['s3']})")
        env = dict(
            os.environ,
            KBC_STORAGE_API_TOKEN="local-dev-token",  # noqa: S106
            KBC_STORAGE_API_HOST=urls["api"],
            AWS_ENDPOINT_URL_S3=urls["s3"],
        )
        print(f"daemon: watching {DATA}; log: tail -F logs/demo.log; status: make demo-status; config: {CONFIG}")
        argv = [sys.executable, "-m", "keboola_sync", "--config", str(CONFIG), "--env-file", str(WORK / "none.env")]
        daemon = subprocess.Popen([*argv, "run"], env=env, text=True)
        return daemon.wait()
    except KeyboardInterrupt:
        # Ctrl-C, at any moment (start-up included): the daemon stops gracefully, the demo exits 0.
        return stop(daemon, signal.SIGINT)
    finally:
        stop(emulator, signal.SIGTERM)


if __name__ == "__main__":
    raise SystemExit(main())
