"""A small client of the query API: JSON over HTTP, SigV4-signed when it talks to AWS.

The local API (``enroll local``) trusts its loopback caller; a deployed API authorizes every route
but ``/health`` with IAM, so requests to it are signed with Signature Version 4 for the
``execute-api`` service, from the usual AWS credentials chain (environment, profile, SSO, role),
through botocore: no dependency beyond what the functions already use.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

#: The service name SigV4 signs API Gateway invocations for.
EXECUTE_API_SERVICE = "execute-api"
#: Budget for one API call (seconds): API Gateway's own integration timeout is 29 s.
DEFAULT_TIMEOUT_SECONDS = 35.0
#: Where ``enroll local --data-dir .local-data`` writes its endpoints.
DEFAULT_ENDPOINTS_PATH = Path(".local-data/endpoints.json")
#: ``https://<api id>.execute-api.<region>.amazonaws.com/<stage>``: the region is in the name.
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")

CredentialsProvider = Callable[[], Any]


class ApiError(Exception):
    """The API answered an error: its HTTP status and its ``{"error": {code, message}}``."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class ApiUnreachable(Exception):
    """No answer at all (connection refused, DNS, timeout)."""


class NoEndpoints(Exception):
    """No ``--api`` and no endpoints.json with an ``api_url``."""


def api_url_from_endpoints(path: Path) -> str:
    """The local API's URL from an endpoints.json written by ``enroll local``."""
    if not path.is_file():
        raise NoEndpoints(
            f"{path} not found: start the local stack with "
            f"`enroll local --data-dir {path.parent}` (it writes {path.name}), "
            "or call a deployed API with --api URL"
        )
    try:
        url = json.loads(path.read_text()).get("api_url")
    except (ValueError, AttributeError) as error:
        raise NoEndpoints(f"{path} is not an endpoints.json written by `enroll local`") from error
    if not url:
        raise NoEndpoints(
            f"{path} has no api_url: restart `enroll local` (the API is served unless "
            "--no-api), or pass --api URL"
        )
    return str(url)


def region_of(url: str) -> str | None:
    """The region in an execute-api host name, or None for any other host."""
    host = urlsplit(url).hostname or ""
    found = _EXECUTE_API_HOST.search(host)
    return found.group(1) if found else None


def default_credentials() -> Any:
    """Credentials from botocore's usual chain; None when there are none."""
    import botocore.session

    return botocore.session.get_session().get_credentials()


@dataclass
class SigV4Signer:
    """Signs a request for ``execute-api`` in ``region`` with fresh credentials each time."""

    region: str
    credentials: CredentialsProvider = default_credentials

    def headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict:
        """The headers to send: ``headers`` plus Authorization, X-Amz-Date (and the token)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self.credentials()
        if credentials is None:
            raise ApiUnreachable(
                "no AWS credentials found to sign the request (set AWS_PROFILE, run "
                "`aws sso login`, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            )
        frozen = (
            credentials.get_frozen_credentials()
            if hasattr(credentials, "get_frozen_credentials")
            else credentials
        )
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        SigV4Auth(frozen, EXECUTE_API_SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())


@dataclass
class ApiClient:
    """Calls the query API at ``base_url`` (no trailing slash); signs when ``signer`` is set."""

    base_url: str
    signer: SigV4Signer | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        """``base_url`` + ``path``, with the query parameters that are not None."""
        present = {k: v for k, v in (query or {}).items() if v is not None}
        suffix = f"?{urlencode(present)}" if present else ""
        return f"{self.base_url.rstrip('/')}{path}{suffix}"

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> tuple[int, dict[str, str], Any]:
        """Send one request; return (status, headers, JSON body). Raise ApiError on 4xx/5xx."""
        url = self.url(path, query)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.signer is not None:
            headers = self.signer.headers(method, url, data, headers)
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                status, raw, answer_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, answer_headers = error.code, error.read(), error.headers
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiUnreachable(f"cannot reach the API at {self.base_url}: {reason}") from error
        payload = _json_or_text(raw)
        if status >= 400:
            code, message = _error_of(status, payload)
            raise ApiError(status, code, message, payload)
        return status, dict(answer_headers.items()), payload

    # -- the routes ------------------------------------------------------------------------------

    def users(self, limit: int | None = None, next_token: str | None = None) -> Any:
        """GET /users: one page."""
        return self.request("GET", "/users", query={"limit": limit, "next_token": next_token})[2]

    def user(self, user_id: str) -> Any:
        """GET /users/{userId}."""
        return self.request("GET", f"/users/{_segment(user_id)}")[2]

    def photos(self, user_id: str) -> Any:
        """GET /users/{userId}/photos."""
        return self.request("GET", f"/users/{_segment(user_id)}/photos")[2]

    def search(self, image: dict[str, Any], **options: Any) -> Any:
        """POST /search with ``{"image": b64}`` or ``{"s3_key": ...}`` and options."""
        body = {**image, **{k: v for k, v in options.items() if v is not None}}
        return self.request("POST", "/search", body=body)[2]

    def verify(self, user_id: str, image: dict[str, Any], **options: Any) -> Any:
        """POST /users/{userId}/verify."""
        body = {**image, **{k: v for k, v in options.items() if v is not None}}
        return self.request("POST", f"/users/{_segment(user_id)}/verify", body=body)[2]

    def delete(self, user_id: str) -> Any:
        """DELETE /users/{userId} (202: the erasure runs in the background)."""
        return self.request("DELETE", f"/users/{_segment(user_id)}")[2]


def _segment(value: str) -> str:
    """One path segment, percent-encoded but for what a UserId may hold (letters, digits and
    ``_ . - :``, all legal in a segment): API Gateway hands the function the path as sent."""
    return quote(value, safe=":")


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _error_of(status: int, payload: Any) -> tuple[str, str]:
    """The API's error code and message; API Gateway's own errors are ``{"message": ...}``."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            return str(error.get("code", status)), str(error.get("message", ""))
        if "message" in payload or "Message" in payload:
            # API Gateway's answers (403 for a bad signature, 429 from stage throttling...).
            return f"HTTP_{status}", str(payload.get("message") or payload.get("Message"))
    return f"HTTP_{status}", str(payload or "")
