"""The emulated project and its tokens: who may do what, and the tokens/verify payload (§1.3).

Two tokens exist: the master token (`--token`, default `local-dev-token`) and optionally a
read-only one (`--readonly-token`) for tests of limited tokens (§1.4: 403 `accessDenied`). The control
route `POST /_emulator/tokens` adds master tokens and revokes tokens, to test a token rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROJECT_ID = 1234  # §1.3: owner.id is the project id, an int
PROJECT_NAME = "Keboola Emulator"
REGION = "us-east-1"


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
        self._by_secret: dict[str, Token] = {
            master: Token("1", master, "Master token (keboola-emulator)", can_manage_buckets=True)
        }
        self._issued = 2  # ids 1 and 2 are the master and the read-only token; later tokens count on
        if readonly:
            self._by_secret[readonly] = Token(
                "2", readonly, "Read-only token (keboola-emulator)", can_manage_buckets=False
            )

    def __repr__(self) -> str:
        return f"TokenRegistry({len(self._by_secret)} tokens)"

    def add_master(self, secret: str) -> None:
        """Another master token of the same project (a rotation: the new token works at once)."""
        if secret not in self._by_secret:
            self._issued += 1
            token_id = str(self._issued)
            self._by_secret[secret] = Token(
                token_id, secret, "Master token (keboola-emulator)", can_manage_buckets=True
            )

    def revoke(self, secret: str) -> None:
        """The token stops working: every request with it is answered 401 storage.tokenInvalid (§1.4)."""
        self._by_secret.pop(secret, None)

    def __len__(self) -> int:
        return len(self._by_secret)

    def lookup(self, secret: str) -> Token | None:
        return self._by_secret.get(secret)

    @property
    def master(self) -> Token:
        return next(t for t in self._by_secret.values() if t.is_master)


def creator_token(token: Token) -> dict[str, Any]:
    return {"id": int(token.id), "description": token.description}


def verify_payload(
    token: Token, base_url: str, bucket_ids: list[str], created: str, data_size_bytes: int, rows_count: int
) -> dict[str, Any]:
    """§1.3 shape; `admin` only for master tokens (GO storage_token_test), owner.id an int."""
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
        "organization": {"id": 1},
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
        }
    return payload
