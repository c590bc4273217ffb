"""The storage room is the only importer of the Keboola SDK and the cloud SDKs (docs/architecture.md):
every other module of the daemon talks to Keboola and its file storage through `keboola_sync.storage`."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "keboola_sync"
STORAGE_ONLY = ("kbcstorage", "boto3", "botocore", "azure", "google")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_storage_room_imports_the_keboola_and_cloud_sdks() -> None:
    outside = {
        str(path.relative_to(SRC)): sorted(_imported_roots(path) & set(STORAGE_ONLY))
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] != "storage"
    }
    assert {name: found for name, found in outside.items() if found} == {}


def test_each_cloud_has_its_uploader_in_the_storage_room() -> None:
    imported = {path.stem: _imported_roots(path) for path in (SRC / "storage").glob("*.py")}
    assert "boto3" in imported["s3upload"]
    assert "azure" in imported["absupload"]
    assert "google" in imported["gcsupload"]
