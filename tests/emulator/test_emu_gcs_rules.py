"""The GCS front door's pure rules (gcs.py): who a token lets at which object, where an upload's object
name is, and which paths name an object. Fast, no servers."""

from __future__ import annotations

import datetime as dt
import json

from keboola_emulator.gcs import BUCKET, Grant, _name_in_body, _object_in_path


def _grant(key: str, *, prefix: bool = False, write: bool = True, minutes: int = 60) -> Grant:
    return Grant(key, prefix, write, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes))


def test_an_upload_token_reaches_exactly_its_object() -> None:
    grant = _grant("exp-15/1/files/5.a.csv")
    assert grant.allows("exp-15/1/files/5.a.csv", write=True)
    assert grant.allows("exp-15/1/files/5.a.csv", write=False)
    assert not grant.allows("exp-15/1/files/5.a.csv.other", write=True)
    assert not grant.allows("exp-15/1/files/5.a.cs", write=False)


def test_a_sliced_file_token_reaches_objects_under_its_prefix_only() -> None:
    grant = _grant("exp-15/1/files/6.s.csv/", prefix=True)
    assert grant.allows("exp-15/1/files/6.s.csv/part001.gz", write=True)
    assert grant.allows("exp-15/1/files/6.s.csv/manifest", write=True)
    assert not grant.allows("exp-15/1/files/6.s.csv.x/part001.gz", write=True)


def test_a_read_token_never_writes_and_an_expired_one_does_nothing() -> None:
    assert not _grant("k", write=False).allows("k", write=True)
    assert _grant("k", write=False).allows("k", write=False)
    assert not _grant("k", minutes=-1).allows("k", write=False)


def test_the_object_name_of_an_upload_is_read_from_its_body() -> None:
    assert _name_in_body(json.dumps({"name": "a/b.csv"}).encode()) == "a/b.csv"  # resumable initiation
    multipart = (
        b"--==0==\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n"
        + json.dumps({"name": "x/y.csv.gz"}).encode()
        + b"\r\n--==0==\r\ncontent-type: application/octet-stream\r\n\r\n\x1f\x8b{not json}\r\n--==0==--"
    )
    assert _name_in_body(multipart) == "x/y.csv.gz"
    assert _name_in_body(b"no metadata at all") == ""
    assert _name_in_body(b"[1, 2]") == ""


def test_object_paths_of_the_json_and_download_apis() -> None:
    prefixes = ("/storage/v1", "/download/storage/v1")
    assert _object_in_path(f"/storage/v1/b/{BUCKET}/o/a%2Fb.csv", *prefixes) == "a/b.csv"
    assert _object_in_path(f"/download/storage/v1/b/{BUCKET}/o/a/b.csv", *prefixes) == "a/b.csv"
    assert _object_in_path("/storage/v1/b/other-bucket/o/a.csv", *prefixes) is None
    assert _object_in_path(f"/storage/v1/b/{BUCKET}/o", *prefixes) is None
