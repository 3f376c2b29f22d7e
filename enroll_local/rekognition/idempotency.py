"""ClientRequestToken replay for CreateUser, DeleteUser, AssociateFaces and DisassociateFaces.

Same token + same parameters -> the stored response, even if the world changed since (so a
retried DeleteUser answers success, not ResourceNotFound). Same token + other parameters ->
IdempotentParameterMismatchException. Only successes are remembered: a failed call did nothing,
so retrying it must run again.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from typing import Any

from .errors import RekognitionError

TOKEN_OPERATIONS = frozenset({"CreateUser", "DeleteUser", "AssociateFaces", "DisassociateFaces"})
# AWS does not document how long tokens are kept; a day covers every retry policy we use.
TOKEN_RETENTION_SECONDS = 24 * 3600
MAX_REMEMBERED_TOKENS = 100_000  # oldest forgotten first, bounds memory


def fingerprint(params: dict[str, Any]) -> str:
    """A digest of the request parameters other than the token itself."""
    body = {k: v for k, v in params.items() if k != "ClientRequestToken"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class TokenCache:
    """(account, region, operation, token) -> (fingerprint, response, stored_at)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[str, dict[str, Any], float]] = OrderedDict()

    @staticmethod
    def _key(account: str, region: str, operation: str, token: str) -> str:
        return f"{account}|{region}|{operation}|{token}"

    def replay(
        self, account: str, region: str, operation: str, params: dict[str, Any], now: float
    ) -> dict[str, Any] | None:
        """The stored response for this token, None if unseen; raise on a parameter mismatch."""
        token = params.get("ClientRequestToken")
        if operation not in TOKEN_OPERATIONS or not token:
            return None
        self._expire(now)
        entry = self._entries.get(self._key(account, region, operation, token))
        if entry is None:
            return None
        if entry[0] != fingerprint(params):
            raise RekognitionError(
                "IdempotentParameterMismatchException",
                f"The ClientRequestToken: {token} you have supplied is already in use.",
            )
        return copy.deepcopy(entry[1])

    def remember(
        self,
        account: str,
        region: str,
        operation: str,
        params: dict[str, Any],
        response: dict[str, Any],
        now: float,
    ) -> None:
        """Store a successful response under the request's token (no token: nothing to do)."""
        token = params.get("ClientRequestToken")
        if operation not in TOKEN_OPERATIONS or not token:
            return
        key = self._key(account, region, operation, token)
        self._entries[key] = (fingerprint(params), copy.deepcopy(response), now)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_REMEMBERED_TOKENS:
            self._entries.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._entries:
            key, (_, _, stored_at) = next(iter(self._entries.items()))
            if now - stored_at < TOKEN_RETENTION_SECONDS:
                break
            del self._entries[key]

    def export(self) -> list[list[Any]]:
        """JSON-able entries for persistence."""
        return [[key, fp, resp, at] for key, (fp, resp, at) in self._entries.items()]

    def restore(self, entries: list[list[Any]]) -> None:
        """Load :meth:`export` output."""
        self._entries = OrderedDict((key, (fp, resp, at)) for key, fp, resp, at in entries)
