"""The emulated project and its tokens: who may do what, and the tokens/verify payload (§1.3).

Two tokens exist: the master token (`--token`, default `local-dev-token`) and optionally a
read-only one (`--readonly-token`) for tests of limited tokens (§1.4: 403 `accessDenied`). Tests of token
rotation add and revoke master tokens at run time (`POST /_emulator/tokens`, `.../tokens/revoke`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

PROJECT_ID = 1234  # §1.3: owner.id is the project id, an int
PROJECT_NAME = "Keboola Emulator"
REGION = "us-east-1"
ORGANIZATION_ID = "1"  # §12: organization.id is a string, owner.id an int


@dataclass(frozen=True)
class Token:
    id: str  # §1.3: token id is a string
    secret: str
    description: str
    can_manage_buckets: bool

    @property
    def is_master(self) -> bool:
        return self.can_manage_buckets


class TokenRegistry:
    """Looks tokens up by their secret; never exposes secrets in reprs or logs."""

    def __init__(self, master: str, readonly: str | None = None) -> None:
        self._lock = threading.Lock()
        self._next_id = 3
        self._by_secret: dict[str, Token] = {
            master: Token("1", master, "Master token (keboola-emulator)", can_manage_buckets=True)
        }
        if readonly:
            self._by_secret[readonly] = Token(
                "2", readonly, "Read-only token (keboola-emulator)", can_manage_buckets=False
            )

    def __repr__(self) -> str:
        return f"TokenRegistry({len(self._by_secret)} tokens)"

    def lookup(self, secret: str) -> Token | None:
        return self._by_secret.get(secret)

    def add_master(self, secret: str) -> None:
        """Accept one more master token (a rotated one); adding a known secret changes nothing."""
        with self._lock:
            if secret not in self._by_secret:
                token_id, self._next_id = str(self._next_id), self._next_id + 1
                self._by_secret = {
                    **self._by_secret,
                    secret: Token(token_id, secret, "Master token (keboola-emulator)", can_manage_buckets=True),
                }

    def revoke(self, secret: str) -> bool:
        """Stop accepting a token: from now on it is answered 401 as a revoked token is (§1.4)."""
        with self._lock:
            if secret not in self._by_secret:
                return False
            self._by_secret = {k: v for k, v in self._by_secret.items() if k != secret}
            return True

    def __len__(self) -> int:
        return len(self._by_secret)

    @property
    def master(self) -> Token:
        return next(t for t in self._by_secret.values() if t.is_master)


def creator_token(token: Token) -> dict[str, Any]:
    return {"id": int(token.id), "description": token.description}


def verify_payload(
    token: Token, base_url: str, bucket_ids: list[str], created: str, data_size_bytes: int, rows_count: int
) -> dict[str, Any]:
    """§1.3 shape with the §12 corrections; `admin` only for master tokens (GO storage_token_test),
    owner.id an int, organization.id a string."""
    permission = "manage" if token.can_manage_buckets else "read"
    payload: dict[str, Any] = {
        "id": token.id,
        "token": token.secret,  # §1.3/§9.17: the real API returns it; clients must not log it
        "description": token.description,
        "created": created,
        "refreshed": created,
        "uri": f"{base_url}/v2/storage/tokens/{token.id}",
        "isMasterToken": token.is_master,
        "canManageBuckets": token.can_manage_buckets,
        "canManageTokens": token.is_master,
        "canReadAllFileUploads": True,
        "canPurgeTrash": token.is_master,
        "canManageProtectedDefaultBranch": False,
        "canCreateJobs": token.is_master,
        "expires": None,
        "isExpired": False,
        "isDisabled": False,
        "dailyCapacity": 0,
        "bucketPermissions": {bucket_id: permission for bucket_id in bucket_ids},
        "componentAccess": [],
        "creatorToken": {"id": 1, "description": "Master token (keboola-emulator)"},
        "isBYODB": False,  # §12: present in real responses
        "organization": {"id": ORGANIZATION_ID},  # §12: a string (real recording; GO decodes a string)
        "owner": {
            "id": PROJECT_ID,
            "name": PROJECT_NAME,
            "type": "production",
            "region": REGION,
            "created": created,
            "expires": None,
            "features": [],
            "dataSizeBytes": data_size_bytes,
            "rowsCount": rows_count,
            "hasSnowflake": True,
            "hasBigquery": False,
            "hasRedshift": False,
            "hasSynapse": False,
            "hasExasol": False,
            "hasTeradata": False,
            "hasMysql": False,  # §12: present in real responses
            "hasTryModeOn": "0",  # §12: a string in real responses
            "billedMonthlyPrice": None,  # §12
            "defaultBackend": "snowflake",
            "fileStorageProvider": "aws",
            "assignedBackends": ["snowflake"],
            "dataRetentionTimeInDays": 7,
            "limits": {
                "storage.dataSizeBytes": {"name": "storage.dataSizeBytes", "value": 50000000000},
                "storage.jobsParallelism": {"name": "storage.jobsParallelism", "value": 10},
            },
            "metrics": {
                "storage.dataSizeBytes": {"name": "storage.dataSizeBytes", "value": data_size_bytes},
                "storage.rowsCount": {"name": "storage.rowsCount", "value": rows_count},
            },
            "isDisabled": False,
        },
    }
    if token.is_master:
        payload["admin"] = {
            "id": 1,
            "name": "Emulator Admin",
            "role": "admin",
            "features": [],
            "isOrganizationMember": True,
            "isActivated": True,  # §12
        }
    return payload
