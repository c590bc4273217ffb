"""Reading the configuration's files: config.yaml (strict YAML: a key written twice is an error, YAML 1.2
floats such as `1e-9` are numbers) and `.env` (with a warning when others may read the token).

Why apart from config.py: config.py is the schema and its checks; this is text and files, the part that
fails with OS and parser errors.
"""

from __future__ import annotations

import re
import stat
import types
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

from .errors import ConfigError


def kind_of(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a whole number",
        float: "a number",
        str: "a text value",
        list: "a list",
        dict: "a mapping",
        types.NoneType: "an empty value",
    }.get(type(value), type(value).__name__)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise ConfigError(str(path), f"{path}: cannot read it ({exc.strerror}).") from None
    try:
        data = _load_yaml_text(path, text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            str(path), f"{path}: YAML syntax error{where}: {problem}. Compare with config.yaml.example."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), f"{path}: must be a mapping of sections (keboola:, watch:, ...), got {kind_of(data)}."
        )
    return data


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2's floats without a dot (`1e-9`, `5E3`; YAML 1.1 reads them
    as text, which would be refused as "not a number")."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load_yaml_text(path: Path, text: str) -> Any:
    """Parse one document, refusing a key written twice in one mapping: YAML loaders keep the last one
    silently, so a second `watch:` section would drop every key of the first."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(path, node, (), set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_duplicate_keys(path: Path, node: yaml.Node, parents: tuple[str, ...], seen_nodes: set[int]) -> None:
    if id(node) in seen_nodes:  # an alias (*x) of a node already checked; also ends recursive anchors
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item, parents, seen_nodes)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        name = str(key_node.value)
        line = key_node.start_mark.line + 1
        dotted = ".".join((*parents, name))
        if isinstance(key_node, yaml.ScalarNode) and name in seen:
            raise ConfigError(
                dotted,
                f"{dotted}: written twice in {path} (line {seen[name]} and line {line}); YAML would keep only"
                f" the second and silently drop the first. Keep one {name}: and put all its values there.",
            )
        seen[name] = line
        _refuse_duplicate_keys(path, value_node, (*parents, name), seen_nodes)


def read_env_file(env_file: Path | None, warnings: list[str]) -> dict[str, str]:
    if env_file is None or not env_file.exists():
        return {}
    if not env_file.is_file():
        raise ConfigError(str(env_file), f"{env_file} is not a file. Pass the path of your .env with --env-file.")
    try:
        with env_file.open(encoding="utf-8") as handle:
            values = dotenv_values(stream=handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(env_file), f"{env_file}: cannot read it ({exc}).") from None
    _warn_if_shared(env_file, warnings)
    return {k: v for k, v in values.items() if v is not None}


def _warn_if_shared(path: Path, warnings: list[str]) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        warnings.append(f"{path} is readable by other users (mode {mode:04o}); run chmod 600 {path}")
