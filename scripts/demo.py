"""`make demo`: try keboola-sync without a Keboola account.

Starts the local Keboola Storage API emulator and the daemon watching ./data (created with a sample
folder if missing). Drop CSV files into ./data/<folder>/ and watch the log; `keboola-sync status` in
another terminal shows what is synced. Ctrl-C stops both. Nothing here needs a token: the emulator
accepts `local-dev-token`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
WORK = ROOT / ".demo"


def main() -> int:
    DATA.mkdir(exist_ok=True)
    if not any(DATA.iterdir()):
        (DATA / "sales").mkdir()
        (DATA / "sales" / "orders.csv").write_text("id,customer,amount\n1,Alice,120\n2,Bob,80\n")
        print("created ./data/sales/orders.csv as a sample")
    WORK.mkdir(exist_ok=True)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "keboola_emulator", "--port", "0", "--data-dir", str(WORK / "emulator")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emulator.stdout is not None
    ready = emulator.stdout.readline().split()
    if not ready or ready[0] != "READY":
        print("the emulator did not start", file=sys.stderr)
        emulator.terminate()
        return 2
    urls = dict(part.split("=", 1) for part in ready[1:])
    print(f"emulator: {urls['api']} (S3 {urls['s3']})")
    config = WORK / "config.yaml"
    config.write_text(
        f"watch:\n  path: {DATA}\n  stable_seconds: 1\n  rescan_seconds: 30\n"
        f"state:\n  path: {WORK / 'state.db'}\n"
        f"upload:\n  spool_dir: {WORK / 'spool'}\n"
        f"daemon:\n  health_file: {WORK / 'health.json'}\n"
        f"logging:\n  file: {ROOT / 'logs' / 'demo.log'}\n"
    )
    env = dict(
        os.environ,
        KBC_STORAGE_API_TOKEN="local-dev-token",  # noqa: S106
        KBC_STORAGE_API_HOST=urls["api"],
        AWS_ENDPOINT_URL_S3=urls["s3"],
    )
    print(
        f"daemon: watching {DATA}; log in logs/demo.log; status: "
        f"KBC_STORAGE_API_HOST={urls['api']} keboola-sync --config {config} status"
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "keboola_sync", "--config", str(config), "--env-file", str(WORK / "none.env"), "run"],
        env=env,
    )
    try:
        return daemon.wait()
    except KeyboardInterrupt:
        daemon.send_signal(signal.SIGINT)
        return daemon.wait()
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
