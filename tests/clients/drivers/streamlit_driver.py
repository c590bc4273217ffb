"""Runs inside keboola-streamlit's own virtual environment (tests/clients): write, read and an event
against the emulator, unpatched (outside a Streamlit server the library runs as plain Python).
Prints one JSON object with what the client saw; the test judges it. Works in the current folder
(read_table writes `<table>.csv` there). AWS_ENDPOINT_URL_S3 points kbcstorage's boto3 at the emulator.

usage: python streamlit_driver.py API_URL TOKEN TABLE_ID
"""

import json
import sys

import pandas as pd
from keboola_streamlit import KeboolaStreamlit


def main() -> None:
    api_url, token, table_id = sys.argv[1:4]
    app = KeboolaStreamlit(api_url, token)
    # what the data-app proxy would put in the request headers (the library's own dev hook)
    app.set_dev_mockup_headers({"X-Kbc-User-Email": "tester@example.com", "Origin": "Unknown"})
    out: dict = {}
    frame = pd.DataFrame({"id": ["1", "2", "3"], "name": ["a", "b", "c"]})
    out["write_full"] = app.write_table(table_id, frame, is_incremental=False, raise_on_error=True)
    more = pd.DataFrame({"id": ["4"], "name": ["d"]})
    out["write_incremental"] = app.write_table(table_id, more, is_incremental=True, raise_on_error=True)
    read = app.read_table(table_id)
    out["read"] = {"columns": list(read.columns), "rows": read.astype(str).values.tolist()}
    status, text = app.create_event(message="keboola-sync client suite", event_type="keboola_sync_check")
    out["event"] = {"status": status, "body": json.loads(text) if text else None}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
