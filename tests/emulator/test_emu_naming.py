"""Column-name sanitising against the shared example table (tests/data/column_names.py, §4.4, §12)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from keboola_emulator.naming import (
    column_name_problem,
    sanitize_column_name,
    table_name_problem,
    table_width_problem,
)


def _load_table():  # tests/ is not a package: import the shared table by path
    path = Path(__file__).resolve().parents[1] / "data" / "column_names.py"
    spec = importlib.util.spec_from_file_location("column_names", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("column_names", module)
    spec.loader.exec_module(module)
    return module


TABLE = _load_table()


@pytest.mark.parametrize("case", TABLE.settled(), ids=lambda c: repr(c.header)[:40])
def test_settled_examples(case) -> None:
    assert sanitize_column_name(case.header) == case.column


@pytest.mark.parametrize("case", TABLE.locale_dependent(), ids=lambda c: repr(c.header)[:40])
def test_locale_dependent_examples_follow_the_modelled_locale(case) -> None:
    """Outside Windows-1250 the emulator models glibc's C.UTF-8; where §12 records that locale's
    outcome, it is the one given."""
    stored = sanitize_column_name(case.header)
    assert stored == case.column
    if "C.UTF-8" in case.outcomes:
        assert stored == case.outcomes["C.UTF-8"]


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


def test_table_width_limit() -> None:
    assert table_width_problem(1200) is None
    assert table_width_problem(1201) == (
        "Too many columns. The table would have 1201 columns; at most 1200 columns are allowed."
    )
    assert table_width_problem(1000, limit=999)
