"""Which cloud a files/prepare answer asks the upload to go to (§5.1), read without any cloud's SDK.

Apart from the uploaders (`s3upload`, `absupload`, `gcsupload`) because each of those imports its cloud's
SDK, and a daemon on an Azure stack should not wait for boto3 to learn that it needs Azure (issue 18.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Cloud = Literal["aws", "azure", "gcp"]


def is_s3(prepared: Mapping[str, Any]) -> bool:
    """Does this files/prepare answer ask for an S3 upload with the credentials we need?"""
    return prepared.get("provider", "aws") == "aws" and "uploadParams" in prepared


def is_abs(prepared: Mapping[str, Any]) -> bool:
    """Does this files/prepare answer ask for an Azure Blob Storage upload?"""
    return "absUploadParams" in prepared


def is_gcs(prepared: Mapping[str, Any]) -> bool:
    """Does this files/prepare answer ask for a Google Cloud Storage upload?"""
    return "gcsUploadParams" in prepared


def cloud_of(prepared: Mapping[str, Any]) -> Cloud | None:
    """The cloud whose uploader takes this answer; None for a shape we do not know (the SDK's uploader)."""
    if is_s3(prepared):
        return "aws"
    if is_abs(prepared):
        return "azure"
    if is_gcs(prepared):
        return "gcp"
    return None
