"""PHP-style request parameters, parsed as Keboola's PHP front parses them (§12 "PHP-style parameters").

`tags[]=a&tags[]=b` and `tags[0]=a&tags[1]=b` are both the list `["a", "b"]`;
`metadata[0][key]=k&metadata[0][value]=v` is `[{"key": "k", "value": "v"}]`;
`columnsMetadata[id][0][key]=k` is `{"id": [{"key": "k"}]}`. A plain `name=x` keeps its last value,
as PHP does. Clients that send these forms (kbagent, the PHP and Go clients) lose data silently when
a server only understands `name[]`, which is why the whole grammar is handled here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def split_key(key: str) -> list[str] | None:
    """`a[0][key]` -> ["a", "0", "key"]; `a[]` -> ["a", ""]; `a` -> ["a"]; malformed -> None."""
    match = _KEY.match(key)
    if match is None:
        return None
    return [match.group(1), *_PART.findall(match.group(2))]


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Builds the nested structure PHP's `parse_str` would, then turns every dict whose keys are
    all integers into a list ordered by index (JSON clients see lists, as they do from Keboola)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        path = split_key(key)
        if path is None:
            root[key] = value
            continue
        _assign(root, path, value)
    return _listify(root)  # type: ignore[no-any-return]


def _assign(node: dict[str, Any], path: list[str], value: str) -> None:
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if part == "":  # `[]` appends at the next integer index, as in PHP
            part = str(_next_index(node))
        if last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child


def _next_index(node: dict[str, Any]) -> int:
    indexes = [int(k) for k in node if k.isdigit()]
    return max(indexes) + 1 if indexes else 0


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {k: _listify(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted
