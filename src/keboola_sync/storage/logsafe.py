"""Keeps upload credentials out of the HTTP libraries' own log lines.

At DEBUG the daemon lets urllib3 speak (`logs.NOISY_LOGGERS`), and urllib3 quotes every request's URL
whole: an Azure block's URL carries the SAS (`sig=`, §5.1 `SASConnectionString`), a GCS chunk's URL the
resumable session id (`upload_id=`, a credential: whoever has it can write the object). The daemon's
formatter redacts only the secrets it knows (the Storage API token); these change with every file. So a
filter on those loggers cuts the query string of any line that names a credential parameter, the way
`errors.classify` cuts them from error messages. Lines without one (the Storage API's `?include=...`)
stay whole.
"""

from __future__ import annotations

import logging
import re

from .errors import without_queries

# Query parameters that are credentials on some cloud (Azure SAS, GCS sessions and signed URLs, S3
# presigned URLs), or a token passed in a query.
_CREDENTIAL_PARAM = re.compile(
    r"(?i)[?&](sig|upload_id|x-goog-signature|x-goog-credential|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|access_token|token)="
)
# The loggers that quote request URLs: urllib3 (under requests, azure-core and botocore alike).
URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection")


class CredentialQueryFilter(logging.Filter):
    """Rewrites a record whose message quotes a credential-bearing URL; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _CREDENTIAL_PARAM.search(message):
            record.msg, record.args = without_queries(message), ()
        return True


_FILTER = CredentialQueryFilter()


def install() -> None:
    """Put the filter on every URL-quoting logger (once; adding the same filter again is a no-op)."""
    for name in URL_LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)
