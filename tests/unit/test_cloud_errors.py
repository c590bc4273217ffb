"""`classify` reads the Azure and GCS uploaders' errors like S3's: passing trouble is worth another try,
the rest is terminal, and no message keeps a URL's query string (an Azure SAS, a GCS session id)."""

from __future__ import annotations

import logging

import requests
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from google.resumable_media import InvalidResponse

from keboola_sync.storage import StorageTerminal, StorageTransient, classify
from keboola_sync.storage.logsafe import CredentialQueryFilter

SAS_URL = "https://acct.blob.core.windows.net/kbc/f.csv?sv=2024&sp=cw&sig=SECRETSIG"


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.url = SAS_URL
    return response


def _azure_answer(status: int) -> HttpResponseError:
    error = HttpResponseError(message="the service said no")
    error.status_code = status  # as azure-core sets it from the answer
    return error


def test_azure_answers_are_transient_or_terminal_by_status() -> None:
    busy = classify(_azure_answer(503), "uploading block 1 of a.csv")
    denied = classify(_azure_answer(403), "uploading block 1 of a.csv")
    assert isinstance(busy, StorageTransient) and busy.status == 503
    assert type(denied) is StorageTerminal and denied.status == 403


def test_a_lost_connection_to_azure_is_transient_and_its_sas_is_not_kept() -> None:
    error = classify(ServiceRequestError(f"Connection aborted while sending {SAS_URL}"), "uploading a.csv")
    assert isinstance(error, StorageTransient)
    assert "SECRETSIG" not in str(error) and "sig=" not in str(error)


def test_gcs_answers_are_transient_or_terminal_by_status() -> None:
    busy = classify(InvalidResponse(_response(503), "Request failed"), "uploading chunk 2 of b.csv")
    gone = classify(InvalidResponse(_response(404), "Request failed"), "uploading chunk 2 of b.csv")
    assert isinstance(busy, StorageTransient) and busy.status == 503
    assert type(gone) is StorageTerminal and gone.status == 404  # the storage's object, not our table


def test_a_requests_error_quoting_a_session_url_keeps_no_query() -> None:
    url = "http://127.0.0.1:1/upload/storage/v1/b/kbc/o?uploadType=resumable&upload_id=SESSIONSECRET"
    error = classify(requests.ConnectionError(f"Max retries exceeded with url: {url}"), "uploading b.csv")
    assert isinstance(error, StorageTransient) and "SESSIONSECRET" not in str(error)


def test_urllib3_lines_quoting_a_credential_lose_their_query_and_others_stay_whole() -> None:
    """At DEBUG urllib3 logs each request's URL; the storage room's filter cuts the SAS and the GCS
    session id from those lines (logsafe) and leaves the Storage API's queries alone."""

    def line(url: str) -> str:
        record = logging.LogRecord(
            "urllib3.connectionpool", logging.DEBUG, "", 0, '"%s %s" %s', ("PUT", url, 201), None
        )
        assert CredentialQueryFilter().filter(record)
        return record.getMessage()

    assert "SECRETSIG" not in line(SAS_URL) and "sig=" not in line(SAS_URL)
    session = "/upload/storage/v1/b/kbc/o?uploadType=resumable&upload_id=SESSION123"
    assert "SESSION123" not in line(session)
    assert line("/v2/storage/tables?include=columns") == '"PUT /v2/storage/tables?include=columns" 201'
