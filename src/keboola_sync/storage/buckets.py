"""Pure rules for finding a folder's bucket among Keboola's, with or without the legacy `c-` prefix.

Why not build the id from the name: projects with the feature `disable-legacy-bucket-prefix` create
bucket `in.sales` for name `sales`, the others `in.c-sales` (§3.2, §12 "Buckets without `c-`"). A daemon
that hard-codes `c-` looks for a bucket that never appears, creates it again and again, and loads nothing
(issue 13.3). So the id always comes from Keboola: from an existing bucket found here, or from the create
answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# §2.2 / §12: the project feature that drops the `c-` Keboola puts before every new bucket's name.
NO_LEGACY_PREFIX_FEATURE = "disable-legacy-bucket-prefix"
LEGACY_PREFIX = "c-"


def legacy_prefix(features: Iterable[str]) -> bool:
    """Does this project put `c-` before new bucket names? Yes unless it has the feature (§12)."""
    return NO_LEGACY_PREFIX_FEATURE not in set(features)


def predicted_bucket_id(name: str, stage: str, *, legacy: bool) -> str:
    """The id Keboola gives a bucket created with `name` in `stage` (§3.2: `in.c-sales`; §12: `in.sales`).
    A prediction for messages and dry runs; a real bucket's id comes from Keboola."""
    return f"{stage}.{LEGACY_PREFIX if legacy else ''}{name}"


def find_bucket(buckets: Iterable[Mapping[str, Any]], name: str, stage: str) -> str | None:
    """The id of the folder's bucket among `buckets` (the GET buckets list, §3.1), or None.

    A bucket of `stage` matches when its id is `<stage>.<name>` or `<stage>.c-<name>`, or its name is
    `name` or `c-<name>`, or its displayName is `name` (displayName defaults to the name passed at create,
    §3.2). Exact matches win over displayName ones, so a bucket renamed for display does not shadow one of
    the very name. Bucket names are compared exactly: whether Keboola folds their case is UNKNOWN (§12)."""
    names = {name, LEGACY_PREFIX + name}
    ids = {f"{stage}.{n}" for n in names}
    by_display: str | None = None
    for bucket in buckets:
        bucket_id = str(bucket.get("id") or "")
        if not bucket_id or _stage_of(bucket, bucket_id) != stage:
            continue
        if bucket_id in ids or bucket.get("name") in names:
            return bucket_id
        if by_display is None and bucket.get("displayName") == name:
            by_display = bucket_id
    return by_display


def _stage_of(bucket: Mapping[str, Any], bucket_id: str) -> str:
    return str(bucket.get("stage") or bucket_id.partition(".")[0])
