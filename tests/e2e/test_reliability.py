"""Nothing lost, nothing half-loaded, nothing loaded twice (issue 4): real processes, real signals, the
emulator's fault injection. Every wait is a condition with a timeout.

Every test runs on every Keboola file storage (issue 14: tests/e2e/conftest.py gives `emulator` in `aws`,
`azure` and `gcp` mode), so a load killed mid-upload or mid-import is resolved by its kept file id alike
through the S3, Azure and GCS uploaders."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections import Counter

from support.daemon import csv_rows, table_rows, wait_table
from support.emulator import IN, wait_for
from support.tables import export_table


def uid() -> str:
    return uuid.uuid4().hex[:8]


def jobs_per_table(emulator, prefix: str) -> Counter[str]:
    """Create/import jobs per table, read through the real API (GET /v2/storage/jobs)."""
    jobs = emulator.client().jobs
    listing = jobs._get(jobs.base_url, params={"limit": 1000})
    return Counter(
        j["tableId"]
        for j in listing
        if j.get("operationName") in ("tableImport", "tableCreate") and str(j.get("tableId", "")).startswith(prefix)
    )


def test_flaky_keboola_every_file_ends_up_loaded(daemon_factory, emulator):
    folder = f"chaos{uid()}"
    daemon = daemon_factory({"upload": {"concurrency": 8}, "retry": {"max_attempts": 12}})
    files = {f"{folder}/t{i:02d}.csv": f"id,value\n{i},{'v' * i}\n" for i in range(50)}
    for rel, text in files.items():
        daemon.write(rel, text)
    emulator.set_faults(fail_rate=0.2, rate_limit_rate=0.05, drop_rate=0.05, latency_ms=100, fail_jobs=0.1)
    daemon.start()
    daemon.wait_log(f"created {folder}/", count=len(files), timeout=120)
    emulator.reset_faults()
    for rel, text in files.items():
        wait_table(emulator, f"{IN}{folder}.{rel.split('/')[1].removesuffix('.csv')}", csv_rows(text))
    assert daemon.alive
    log = daemon.log()
    assert "retrying in" in log  # each failure says what happens next
    injected = emulator.stats()["faults_injected"]
    assert sum(injected.values()) > 20, injected
    assert daemon.stop() == 0


def test_three_second_latency_is_not_a_timeout(daemon_factory, emulator):
    folder = f"slow{uid()}"
    daemon = daemon_factory({"keboola": {"request_timeout_seconds": 10}})
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    emulator.set_faults(latency_ms=3000)
    result = daemon.run("sync", "--once", timeout=180)
    assert result.returncode == 0, daemon.log()[-2000:]
    emulator.reset_faults()
    assert table_rows(emulator, f"{IN}{folder}.a") == [["id"], ["1"]]


def test_kill_9_at_random_moments_loses_nothing_and_loads_nothing_twice(daemon_factory, emulator):
    rng = random.Random(4)
    folder = f"kill{uid()}"
    daemon = daemon_factory({"upload": {"concurrency": 2}})
    # 20 rounds on S3; the cloud modes share every code path above the uploader, so fewer keep CI short.
    trials = 20 if emulator.azure_url is None and emulator.gcs_url is None else 4
    emulator.set_faults(job_seconds=0.3)
    names = [f"f{i}" for i in range(6)]
    versions: Counter[str] = Counter()
    content: dict[str, str] = {}

    def rewrite(name: str) -> None:
        versions[name] += 1
        rows = "".join(f"{versions[name]},{name},{r}\n" for r in range(rng.randint(1, 30)))
        content[name] = "version,name,row\n" + rows
        daemon.write(f"{folder}/{name}.csv", content[name])

    for name in names:
        rewrite(name)
    for trial in range(trials):
        for name in rng.sample(names, 2):
            rewrite(name)
        stats = emulator.stats()
        base_prepared, base_jobs = stats["files_prepared"], sum(stats["jobs"].values())
        daemon.start()
        moment = rng.choice(["started", "prepared", "job", "loaded"])
        n = rng.randint(1, 2)
        if moment == "started":
            daemon.wait_log("watching with", count=trial + 1)
        elif moment == "prepared":
            goal = base_prepared + n
            wait_for(lambda goal=goal: emulator.stats()["files_prepared"] >= goal, timeout=30)
        elif moment == "job":
            goal = base_jobs + n
            wait_for(lambda goal=goal: sum(emulator.stats()["jobs"].values()) >= goal, timeout=30)
        else:
            goal = base_jobs + n
            wait_for(lambda goal=goal: sum(emulator.stats()["jobs"].values()) >= goal, timeout=30)
            daemon.wait_log(f"-> {IN}", count=daemon.log().count(f"-> {IN}") + 1)
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=10)

    emulator.reset_faults()
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, daemon.log()[-3000:]
    for name in names:
        assert table_rows(emulator, f"{IN}{folder}.{name}") == csv_rows(content[name]), name
    loads = jobs_per_table(emulator, f"{IN}{folder}.")
    for name in names:
        assert loads[f"{IN}{folder}.{name}"] <= versions[name], (name, loads, versions)


def test_a_file_being_appended_is_never_loaded_partially(daemon_factory, emulator):
    folder = f"append{uid()}"
    daemon = daemon_factory({"watch": {"stable_seconds": 1.0}})
    daemon.start()
    daemon.wait_log("watching with")
    path = daemon.watch / folder / "growing.csv"
    path.parent.mkdir()
    table = f"{IN}{folder}.growing"
    seen_counts: set[int] = set()
    done = threading.Event()

    def rows_count() -> int | None:
        try:
            return emulator.client().tables.detail(table)["rowsCount"]
        except OSError:  # 404 until the table exists
            return None

    def observe() -> None:
        while not done.wait(0.1):
            count = rows_count()
            if count is not None:
                seen_counts.add(count)

    observer = threading.Thread(target=observe, daemon=True)
    observer.start()
    total = 0
    deadline = time.monotonic() + 10
    with path.open("w") as f:
        f.write("id,payload\n")
        while time.monotonic() < deadline:
            f.write("".join(f"{total + i},{'x' * 20}\n" for i in range(10)))
            f.flush()
            total += 10
            done.wait(0.05)  # the writer's pace: a chunk every 50 ms, faster than stable_seconds
    wait_for(lambda: rows_count() == total, timeout=30, message="the complete file loaded")
    done.set()
    observer.join(timeout=5)
    assert seen_counts <= {total}, f"partial loads seen: {sorted(seen_counts)} (final {total})"
    assert daemon.stop() == 0


def test_a_thousand_rewrites_give_a_handful_of_loads(daemon_factory, emulator):
    folder = f"burst{uid()}"
    daemon = daemon_factory({"watch": {"stable_seconds": 0.5}})
    daemon.start()
    daemon.wait_log("watching with")
    (daemon.watch / folder).mkdir()
    path = daemon.watch / folder / "hot.csv"
    deadline = time.monotonic() + 10
    for i in range(1000):
        text = f"id,i\n1,{i}\n"
        if i % 2:
            daemon.write(f"{folder}/hot.csv", text)  # atomic save (temp + rename)
        else:
            path.write_text(text)  # in-place save
        left = deadline - time.monotonic()
        threading.Event().wait(max(0.0, left / (1000 - i) - 0.001))
    wait_table(emulator, f"{IN}{folder}.hot", [["id", "i"], ["1", "999"]])
    loads = jobs_per_table(emulator, f"{IN}{folder}.")[f"{IN}{folder}.hot"]
    assert 1 <= loads <= 5, loads
    assert daemon.stop() == 0


def test_sigterm_during_a_large_upload_exits_0_and_the_next_start_completes(daemon_factory, emulator):
    folder = f"term{uid()}"
    daemon = daemon_factory(
        {
            "daemon": {"shutdown_timeout_seconds": 2},
            "upload": {"gzip_threshold_mb": 1000, "multipart_threshold_mb": 5, "multipart_chunk_mb": 5},
        }
    )
    rows = "".join(f"{i},{uuid.uuid4().hex}{uuid.uuid4().hex}\n" for i in range(80_000))  # ~6 MB
    daemon.write(f"{folder}/large.csv", "id,payload\n" + rows)
    emulator.set_faults(s3_bandwidth_mbps=4)  # ~12 s for the upload
    sent = emulator.stats()["s3_put_bytes"]
    daemon.start()
    # Bytes are flowing (a progress line comes only after a whole part, which on GCS is most of the file).
    wait_for(lambda: emulator.stats()["s3_put_bytes"] > sent + 1_000_000, timeout=30, message="the upload is under way")
    started = time.monotonic()
    assert daemon.stop(timeout=20) == 0
    assert time.monotonic() - started < 2 + 5, "exits within the shutdown timeout (plus start-up slack)"
    assert "abandon" in daemon.log()
    emulator.reset_faults()
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, daemon.log()[-2000:]
    assert emulator.client().tables.detail(f"{IN}{folder}.large")["rowsCount"] == 80_000


def test_sigterm_while_a_job_runs_lets_it_finish(daemon_factory, emulator):
    folder = f"job{uid()}"
    daemon = daemon_factory({"daemon": {"shutdown_timeout_seconds": 15}})
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    emulator.set_faults(job_seconds=2)
    jobs_before = sum(emulator.stats()["jobs"].values())
    daemon.start()
    wait_for(lambda: sum(emulator.stats()["jobs"].values()) > jobs_before, timeout=30)
    assert daemon.stop() == 0
    assert "created " + f"{folder}/a.csv" in daemon.log()
    assert daemon.run("status").stdout.count("synced") == 1


def test_missing_folder_pauses_and_resumes_and_deleting_never_deletes_remotely(daemon_factory, emulator):
    folder = f"mount{uid()}"
    daemon = daemon_factory({"watch": {"rescan_seconds": 0.5}})
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.write(f"{folder}/b.csv", "id\n2\n")
    daemon.start()
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])
    wait_table(emulator, f"{IN}{folder}.b", [["id"], ["2"]])

    os.remove(daemon.watch / folder / "b.csv")
    aside = daemon.tmp / "unmounted"
    os.rename(daemon.watch, aside)  # the volume goes away
    daemon.wait_log("pausing")
    wait_for(lambda: daemon.run("health").returncode == 1, timeout=20)
    os.rename(aside, daemon.watch)
    daemon.wait_log("resuming")
    daemon.write(f"{folder}/a.csv", "id\n3\n")
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["3"]])
    assert table_rows(emulator, f"{IN}{folder}.b") == [["id"], ["2"]]  # deleted locally, kept remotely
    wait_for(lambda: daemon.run("health").returncode == 0, timeout=20)
    assert daemon.stop() == 0


def test_spools_left_by_a_killed_run_are_removed_at_start(daemon_factory, emulator):
    daemon = daemon_factory()
    spool = daemon.tmp / "spool"
    spool.mkdir()
    leftovers = [spool / "orders-ab12cd34.csv.gz", spool / ".orders-zz99yy88.part", spool / "x-abcdefgh.csv"]
    for path in leftovers:
        path.write_text("old")
    foreign = spool / "notes.txt"
    foreign.write_text("not ours")
    daemon.write(f"spool{uid()}/a.csv", "id\n1\n")
    assert daemon.run("sync", "--once").returncode == 0
    assert not any(p.exists() for p in leftovers)
    assert foreign.exists()
    assert "removed 3 spool file(s)" in daemon.log()


def test_a_lost_answer_to_an_import_never_sends_it_twice(daemon_factory, emulator):
    """Keboola did the work but the answer never arrived (keboola-storage-api.md §9 item 4): the daemon
    finds the job by its file id instead of sending the create or import again."""
    folder = f"lost{uid()}"
    daemon = daemon_factory()
    for i in range(4):
        daemon.write(f"{folder}/t{i}.csv", f"id\n{i}\n")
    emulator.set_faults(lost_response_rate=1.0, paths=["/tables-async", "/import-async"])
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-3000:]
    for i in range(4):
        daemon.write(f"{folder}/t{i}.csv", f"id\n{i + 10}\n")
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-3000:]
    emulator.reset_faults()
    assert emulator.stats()["faults_injected"].get("lost_response", 0) >= 8
    for i in range(4):
        assert table_rows(emulator, f"{IN}{folder}.t{i}") == [["id"], [str(i + 10)]]
    loads = jobs_per_table(emulator, f"{IN}{folder}.")
    assert all(loads[f"{IN}{folder}.t{i}"] == 2 for i in range(4)), loads  # one create + one import each


def test_a_table_created_by_a_job_whose_answer_died_with_the_daemon_is_ours(daemon_factory, emulator):
    """kill -9 after Keboola took the create but before its answer arrived: no job id and no mark were
    written, only the upload. The next start finds the job by its file id and takes the table as its own
    (not 'not created by keboola-sync'), loading nothing twice."""
    folder = f"orphan{uid()}"
    table = f"{IN}{folder}.t"
    daemon = daemon_factory()
    daemon.write(f"{folder}/t.csv", "id\n1\n")
    # The create is done but its answer is lost, and so is (slowly) every look at the job list that would
    # find it: the daemon is still asking when it is killed, with only its upload in the ledger.
    emulator.set_faults(lost_response_rate=1.0, latency_ms=1000, paths=["/tables-async", "/v2/storage/jobs"])
    daemon.start()
    wait_table(emulator, table, [["id"], ["1"]])
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    emulator.reset_faults()
    assert "keboola-sync.owner" not in {m["key"] for m in emulator.client().tables.detail(table)["metadata"]}

    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-3000:]
    assert "was not created by keboola-sync" not in daemon.log()
    metadata = {m["key"]: m["value"] for m in emulator.client().tables.detail(table)["metadata"]}
    assert metadata["keboola-sync.owner"] == "keboola-sync"
    assert jobs_per_table(emulator, f"{IN}{folder}.")[table] == 1  # the create, never sent again


def test_a_table_dropped_in_keboola_comes_back_although_its_file_did_not_change(daemon_factory, emulator):
    folder = f"drop{uid()}"
    daemon = daemon_factory({"watch": {"rescan_seconds": 1}})
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.write(f"{folder}/b.csv", "id\n2\n")
    daemon.start()
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])
    wait_table(emulator, f"{IN}{folder}.b", [["id"], ["2"]])
    emulator.client().tables.delete(f"{IN}{folder}.a")
    daemon.wait_log(f"table {IN}{folder}.a was deleted in Keboola; loading {folder}/a.csv again")
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])
    assert daemon.stop() == 0
    assert jobs_per_table(emulator, f"{IN}{folder}.")[f"{IN}{folder}.b"] == 1  # b was never reloaded


def test_kill_9_mid_upload_and_mid_import_is_resolved_by_the_file_id(daemon_factory, emulator):
    """kill -9 while a file's bytes are going up (the uplink capped), then, for its next version, while
    the import job runs. Each restart finishes the load: the upload is redone (nothing was kept), the
    running import is found by the kept job / file id and never sent twice; the table equals its file."""
    folder = f"k9{uid()}"
    table = f"{IN}{folder}.t"
    daemon = daemon_factory({"upload": {"gzip_threshold_mb": 1000}})
    first = "id,payload\n" + "".join(f"{i},{uuid.uuid4().hex}\n" for i in range(25_000))  # ~0.9 MB
    daemon.write(f"{folder}/t.csv", first)
    emulator.set_faults(s3_bandwidth_mbps=1)  # ~7 s for the upload, on every file storage
    sent = emulator.stats()["s3_put_bytes"]
    daemon.start()
    wait_for(lambda: emulator.stats()["s3_put_bytes"] > sent, timeout=30, message="the upload started")
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    emulator.reset_faults()
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-3000:]
    exported = export_table(emulator.client(), table, daemon.tmp / "export")
    assert csv_rows(exported.read_text()) == csv_rows(first)  # the whole table, through the cloud

    second = "id,payload\n" + "".join(f"{i},v2-{i}\n" for i in range(500))
    daemon.write(f"{folder}/t.csv", second)
    emulator.set_faults(job_seconds=3)
    jobs = sum(emulator.stats()["jobs"].values())
    daemon.start()
    wait_for(lambda: sum(emulator.stats()["jobs"].values()) > jobs, timeout=30, message="the import started")
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-3000:]
    emulator.reset_faults()
    assert table_rows(emulator, table) == csv_rows(second)
    assert jobs_per_table(emulator, f"{IN}{folder}.")[table] == 2  # one create, one import: none sent twice
