"""Runs inside pykeboola's own virtual environment (tests/clients): its Storage operations against the
emulator, unpatched. Prints one JSON object with what the client saw; the test judges it.

usage: python pykeboola_driver.py API_URL TOKEN BUCKET_ID
"""

import json
import sys
import time

from pykeboola.client import Client
from pykeboola.tables import Column, Table


def wait_for_job(client: Client, job_id: int) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.jobs.get_api_job(job_id)
        if job["status"] in ("success", "error"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"storage job {job_id} did not finish in 30 s")


def main() -> None:
    api_url, token, bucket_id = sys.argv[1:4]
    client = Client(api_url, token)
    out: dict = {}
    columns = [
        Column(name="id", type="INTEGER", primary=True),
        Column(name="label", type="VARCHAR", length="100"),
    ]
    job_id = client.tables.create_table(Table.new_table("typed", bucket_id, columns))
    out["create_job"] = wait_for_job(client, job_id)
    table = next(t for t in client.tables.get_tables(bucket_id) if t.name == "typed")
    out["created"] = {
        "id": table.id,
        "schema": table.schema,
        "native_types": table.native_types,
        "columns": [[c.name, c.type, c.length, c.primary] for c in table.columns],
    }
    table.description = "orders from the shop"
    for column in table.columns:
        column.description = f"the {column.name}"
    out["metadata_answer"] = client.tables.update_table_metadata(table)
    again = next(t for t in client.tables.get_tables() if t.id == table.id)
    out["after_metadata"] = {
        "description": again.description,
        "columns": [[c.name, c.description] for c in again.columns],
    }
    out["deleted"] = client.tables.delete_table(table.id)
    out["tables_left"] = [t.id for t in client.tables.get_tables(bucket_id)]
    try:  # the Queue API is out of scope: the emulator answers Keboola's "not found"
        client.jobs.queue_job("keboola.ex-http", 1)
        out["queue_job"] = "queued"
    except Exception as exc:  # pykeboola raises requests.HTTPError with the API's answer
        out["queue_job"] = str(exc)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
