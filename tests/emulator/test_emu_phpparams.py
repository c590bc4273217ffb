"""PHP-style parameter parsing (§12 "PHP-style parameters"): the grammar Keboola's PHP front accepts."""

from __future__ import annotations

from typing import Any

import pytest

from keboola_emulator.phpparams import parse_pairs, split_key


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("name", "a"), ("name", "b")], {"name": "b"}),  # PHP keeps the last plain value
        ([("tags[]", "a"), ("tags[]", "b")], {"tags": ["a", "b"]}),
        ([("tags[1]", "b"), ("tags[0]", "a")], {"tags": ["a", "b"]}),  # ordered by index
        ([("tags[0]", "a"), ("tags[]", "b")], {"tags": ["a", "b"]}),  # [] appends after the highest index
        (
            [("metadata[0][key]", "k"), ("metadata[0][value]", "v"), ("metadata[1][key]", "k2")],
            {"metadata": [{"key": "k", "value": "v"}, {"key": "k2"}]},
        ),
        ([("columnsMetadata[id][0][key]", "k")], {"columnsMetadata": {"id": [{"key": "k"}]}}),
        ([("whereValues[]", "")], {"whereValues": [""]}),
        ([("odd]", "x")], {"odd]": "x"}),  # not PHP syntax: kept as it came
    ],
)
def test_parse_pairs(pairs: list[tuple[str, str]], expected: dict[str, Any]) -> None:
    assert parse_pairs(pairs) == expected


def test_split_key() -> None:
    assert split_key("a[0][key]") == ["a", "0", "key"]
    assert split_key("a[]") == ["a", ""]
    assert split_key("a") == ["a"]
    assert split_key("[x]") is None
