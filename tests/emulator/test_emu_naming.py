"""Column-name sanitising, exactly the vectors of keboola-storage-api.md §4.4."""

from __future__ import annotations

import pytest

from keboola_emulator.naming import column_name_problem, sanitize_column_name, table_name_problem


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("with spaces", "with_spaces"),
        ("ščřščž", "scrscz"),
        ("_with_underscore", "with_underscore"),
        ("language-id", "language_id"),
        ("oid", "oid_"),
        ("xMax", "xMax_"),
        ("CTID", "CTID_"),
        ("0", "0"),
        ("45", "45"),
        ("Id", "Id"),
        ("queryId", "queryId"),
        # php-utils' own test expects "dlazebni_kostky" here, but its code (`[^a-z0-9_]+` -> "_")
        # cannot produce that; we follow the code (docs/emulator.md, known gaps).
        ("_~dlažební  %_kostky_~", "dlazebni__kostky"),
        ('quo"te', "quo_te"),
        ("a--b", "a_b"),
        ("Straße", "Strasse"),
    ],
)
def test_sanitize(raw: str, stored: str) -> None:
    assert sanitize_column_name(raw) == stored
    assert column_name_problem(raw, stored) is None


@pytest.mark.parametrize("raw", ["", "---", "x" * 65, "Ωμέγα"])
def test_unusable_names_have_a_problem(raw: str) -> None:
    assert column_name_problem(raw, sanitize_column_name(raw))


def test_64_chars_is_the_limit() -> None:
    assert column_name_problem("x" * 64, "x" * 64) is None


def test_table_name_with_dot_message() -> None:
    assert table_name_problem("aliasWithDot.") == (
        "Invalid table name: 'aliasWithDot.' contains not allowed characters. Only alphanumeric characters "
        "dash and underscores are allowed."
    )
