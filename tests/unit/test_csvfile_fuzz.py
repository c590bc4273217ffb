"""Fuzzing csvfile.inspect: whatever bytes land in the folder, the answer is a CsvInfo or InvalidFile.

Anything else (an IndexError, a csv.Error, a UnicodeDecodeError escaping) would crash the sync of that
file with a traceback instead of a clear message, so it is a bug. Bounded so it runs in a few seconds.
"""

from __future__ import annotations

import codecs
import hashlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keboola_sync.csvfile import CsvInfo, inspect, inspect_and_spool
from keboola_sync.errors import InvalidFile

FUZZ = settings(
    max_examples=200,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: CI stays reproducible
)

# CSV-ish text: the characters that matter to a CSV parser are over-represented.
csvish_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(",;\t|\"'\\\r\n ")),
        st.sampled_from(list("abcXYZ019_-")),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
)


def check(data: bytes, sniff_bytes: int = 1024) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(data)
        try:
            info = inspect(path, sniff_bytes=sniff_bytes, delimiters=",;\t|", display_path="f/fuzz.csv")
        except InvalidFile as err:
            assert err.path == "f/fuzz.csv"
            assert err.problem
            assert err.fix
            return
        assert isinstance(info, CsvInfo)
        assert info.size == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert info.header
        assert len(info.columns) == len(info.header)
        assert all(0 < len(c) <= 64 for c in info.columns)
        assert len({c.lower() for c in info.columns}) == len(info.columns)
        data.decode("utf-8")  # a file we accept really is UTF-8


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(csvish_text, st.booleans())
def test_csv_like_text(text: str, bom: bool) -> None:
    check((codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8"))


@FUZZ
@given(
    st.lists(st.lists(csvish_text.filter(lambda s: len(s) < 20), min_size=1, max_size=6), min_size=1, max_size=8),
    st.sampled_from([",", ";", "\t", "|"]),
    st.sampled_from(["\n", "\r\n"]),
)
def test_structured_rows(rows: list[list[str]], delimiter: str, newline: str) -> None:
    text = newline.join(delimiter.join(cells) for cells in rows) + newline
    check(text.encode("utf-8"), sniff_bytes=1024)


@settings(max_examples=40, deadline=5000, derandomize=True)
@given(st.binary(min_size=1, max_size=300), st.integers(min_value=0, max_value=3))
def test_spool_never_leaks_a_temp_file(data: bytes, level: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(data)
        spool_dir = Path(tmp) / "spool"
        try:
            _, spool = inspect_and_spool(
                path,
                spool_dir=spool_dir,
                gzip_threshold_bytes=100,
                gzip_level=level,
                sniff_bytes=1024,
                delimiters=",;\t|",
                display_path="f/fuzz.csv",
            )
        except InvalidFile:
            assert list(spool_dir.iterdir()) == []
            return
        assert [p.name for p in spool_dir.iterdir()] == [spool.path.name]
