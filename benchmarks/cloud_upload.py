"""The daemon's own Azure / GCS uploaders against the SDK's, on the emulator's azure and gcp modes.

    .venv/bin/python benchmarks/cloud_upload.py [--provider azure|gcp|both] [--size-mb 100] [--cap-mbps 0]

One file of incompressible bytes is uploaded to a fresh emulator per provider, once by keboola_sync.storage's
AbsUploader / GcsUploader (`upload_file`, the daemon's defaults) and once by kbcstorage's `Files.upload_file`
(§9.8: BlobClient.upload_blob / blob.upload_from_file), each in its own process so the peak RSS
(sampled every 50 ms) is that upload's alone. `--cap-mbps` caps the emulator's upload bandwidth
(its front door applies --s3-bandwidth-mbps to Azure and GCS traffic too).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import RssSampler, emulator

HERE = Path(__file__).resolve()


def make_file(path: Path, size_mb: int) -> None:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as out:
        for i in range(size_mb):
            out.write(block[i % 7 :] + block[: i % 7])  # no two MiB alike


def worker(args: argparse.Namespace) -> None:
    """One upload in this process (so the parent can sample its RSS alone)."""
    from kbcstorage.client import Client

    if args.gcs:
        os.environ["STORAGE_EMULATOR_HOST"] = args.gcs
    client = Client(args.api, args.token)
    path = Path(args.file)
    if args.worker == "sdk":
        client.files.upload_file(str(path), compress=False)
        return
    import threading

    from keboola_sync.config import UploadConfig
    from keboola_sync.storage.absupload import AbsUploader
    from keboola_sync.storage.gcsupload import GcsUploader

    prepared = client.files.prepare_upload(path.name, size_bytes=path.stat().st_size, federation_token=True)
    kind: Any = AbsUploader if args.provider == "azure" else GcsUploader
    uploader = kind(request_timeout=120, upload=UploadConfig(), progress_seconds=60, abandon=threading.Event())
    uploader.upload_file(prepared, path, path.stat().st_size, path.name)


def timed(cmd: list[str]) -> tuple[float, int]:
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    with RssSampler(proc.pid) as rss:
        code = proc.wait()
    if code != 0:
        raise SystemExit(f"upload failed ({code}): {' '.join(cmd)}")
    return time.monotonic() - start, rss.peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--provider", choices=("azure", "gcp", "both"), default="both")
    p.add_argument("--size-mb", type=int, default=100)
    p.add_argument("--cap-mbps", type=float, default=0.0)
    p.add_argument("--worker", choices=("ours", "sdk"), help=argparse.SUPPRESS)
    for hidden in ("--api", "--token", "--gcs", "--file"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    providers = ("azure", "gcp") if args.provider == "both" else (args.provider,)
    with tempfile.TemporaryDirectory(prefix="cloud-upload-") as tmp:
        path = Path(tmp) / "upload.bin"
        make_file(path, args.size_mb)
        print(f"{args.size_mb} MB, cap {args.cap_mbps or 'none'} Mbit/s")
        print(f"{'provider':<8} {'uploader':<22} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12}")
        for provider in providers:
            extra = ["--file-storage", provider, "--s3-bandwidth-mbps", str(args.cap_mbps)]
            with emulator(*extra) as emu:
                base = [sys.executable, str(HERE), "--provider", provider, "--api", emu.api_url]
                base += ["--token", emu.token, "--file", str(path), "--gcs", emu.gcs_url or ""]
                for name, who in (("keboola_sync", "ours"), ("kbcstorage SDK", "sdk")):
                    seconds, peak = timed([*base, "--worker", who])
                    rate = args.size_mb / seconds
                    print(f"{provider:<8} {name:<22} {seconds:>8.1f} {rate:>7.1f} {peak / 1e6:>12.0f}")


if __name__ == "__main__":
    main()
