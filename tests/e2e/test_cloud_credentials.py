"""Issue 14: on Azure and GCP stacks the upload credentials never reach the daemon's log or its status
output, at DEBUG and through a failure: a gzipped file's upload during the pass is refused (an expired
SAS: Azure 403 AuthenticationFailed; an expired token: GCS 401), the daemon says so and uploads the
finished file under a fresh files/prepare, as on S3. The SAS (`sig=`, the connection string's
`SharedAccessSignature`), the GCS access token and the resumable session URL (its `upload_id` is a
credential too) appear nowhere."""

from __future__ import annotations

import uuid

import pytest

from support.emulator import IN, start_emulator

# What a credential looks like in each stack's traffic: none of it may reach a line the daemon writes.
LEAKS = ("sig=", "SharedAccessSignature", "ya29.", "access_token", "upload_id=")
# The first upload request of a file: Azure's first Put Block, GCS's session initiation.
FIRST_UPLOAD_REQUEST = {"azure": "blockid=", "gcp": "POST /upload/"}
ROWS = 110_000


@pytest.mark.parametrize("file_storage", ["azure", "gcp"])
def test_no_upload_credential_is_logged_even_when_the_upload_fails(daemon_factory, file_storage):
    emu = start_emulator(extra_args=["--file-storage", file_storage])
    try:
        folder = f"cred{uuid.uuid4().hex[:8]}"
        # ~4.9 MB: above the gzip threshold and the pass's first 4 MiB read, so it is gzipped and
        # uploaded while the pass still writes the spool.
        text = "id,payload\n" + "".join(f"{i},{uuid.uuid4().hex}\n" for i in range(ROWS))
        daemon = daemon_factory({"upload": {"gzip_threshold_mb": 1}}, emulator_=emu)
        daemon.write(f"{folder}/big.csv", text)
        emu.set_faults(cloud_fault="refuse", cloud_fault_match=FIRST_UPLOAD_REQUEST[file_storage])
        result = daemon.run("sync", "--once")
        assert result.returncode == 0, daemon.log()[-3000:]
        assert emu.client().tables.detail(f"{IN}{folder}.big")["rowsCount"] == ROWS
        assert emu.stats()["faults_injected"].get("cloud_refuse") == 1
        assert emu.stats()["files_prepared"] == 2  # the refused upload's, then a fresh one
        log = daemon.log()
        refused = "AuthenticationFailed" if file_storage == "azure" else "GCS 401"
        assert "uploading while compressing did not work" in log and refused in log, log[-3000:]
        status = daemon.run("status")
        shown = {"log": log, "output": result.stdout + result.stderr, "status": status.stdout + status.stderr}
        for where, words in shown.items():
            found = [leak for leak in LEAKS if leak in words]
            assert not found, (where, found, words[-3000:])
        emu.reset_faults()
    finally:
        emu.close()
