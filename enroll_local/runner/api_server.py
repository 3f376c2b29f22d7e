"""The query API on loopback: HTTP -> API Gateway REST (v1) proxy event -> the real handler -> HTTP.

``enroll local --api-port N`` serves ``query_api.handler.handler`` the way API Gateway's Lambda
proxy integration calls it in the deployed stack: each request becomes a REST API proxy event
(``/{proxy+}`` resource, headers and query string single- and multi-valued, body as text or
base64) and the function's answer (statusCode, headers, multiValueHeaders, body,
isBase64Encoded) becomes the HTTP response. Routing is the function's own resolver's: this
module never looks at the path.

What API Gateway does before the function, and therefore this server too: requests over 10 MB are
refused with 413 (the function never runs), and a function that raises or answers something that
is not a proxy response is a 502. Both answer in the API's error shape. IAM (SigV4) authorization
is not checked locally: the loopback endpoint trusts its caller, like every local endpoint.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from enroll_local.runner.lambda_context import LocalLambdaContext, function_environment
from enroll_local.runner.metrics_bridge import MetricsBridge, call_handler

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

#: API Gateway's payload quota for REST APIs (bytes): larger requests never reach the function.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: A refused body up to this size is still read (and discarded) before the 413 goes out, so a
#: client that sends its whole body before reading the answer sees the 413, not a reset
#: connection; anything larger is cut off (bytes).
MAX_DRAIN_BYTES = 64 * 1024 * 1024
#: Read size while draining a refused body (bytes).
DRAIN_CHUNK_BYTES = 1024 * 1024
#: API Gateway's default integration timeout (seconds): the function's deadline locally.
INTEGRATION_TIMEOUT_SECONDS = 29.0
#: A keep-alive connection idle this long is closed (seconds), so stopping never waits on it.
IDLE_CONNECTION_SECONDS = 30.0
#: The stage name in the proxy event (requestContext.stage and the path API Gateway sees).
LOCAL_STAGE = "local"
#: The REST API id in the event; locally there is one API.
LOCAL_API_ID = "local"
#: Content types whose body is passed to the function as text; anything else is base64, as for
#: a REST API whose binaryMediaTypes is "*/*" for non-text types.
TEXT_CONTENT_TYPES = (
    "application/json",
    "application/problem+json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "text/",
)


def error_body(code: str, message: str) -> bytes:
    """The API's error shape, ``{"error": {"code", "message"}}``, as bytes."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        # No Content-Type: API Gateway passes the body through as text.
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return any(media.startswith(kind) for kind in TEXT_CONTENT_TYPES) or media.endswith("+json")


def _single_and_multi(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """API Gateway's two views of repeated names: the last value, and every value in order."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request as the server read it."""

    method: str
    target: str  # path and query string, as on the request line
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"


def proxy_event(
    request: ApiRequest,
    *,
    stage: str = LOCAL_STAGE,
    account_id: str = "123456789012",
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The API Gateway REST API (v1) Lambda proxy event for ``request``.

    The resource is the greedy ``/{proxy+}``. As in API Gateway's REST APIs, ``path`` keeps the
    percent-encoding the client sent (and no stage), while the path parameter and the query
    string parameters are decoded.
    """
    split = urlsplit(request.target)
    path = split.path or "/"
    headers, multi_headers = _single_and_multi(request.headers)
    query, multi_query = _single_and_multi(parse_qsl(split.query, keep_blank_values=True))
    content_type = next(
        (value for name, value in request.headers if name.lower() == "content-type"), None
    )
    body: str | None
    encoded = False
    if not request.body:
        body = None
    elif _is_text(content_type):
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            # Not text after all: hand the exact bytes over rather than mangle them.
            body, encoded = base64.b64encode(request.body).decode("ascii"), True
    else:
        body, encoded = base64.b64encode(request.body).decode("ascii"), True
    request_id = request_id or str(uuid.uuid4())
    when = time.time() if now is None else now
    user_agent = headers.get("User-Agent") or headers.get("user-agent")
    proxy = unquote(path).lstrip("/")
    return {
        "resource": "/{proxy+}" if proxy else "/",
        "path": path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": proxy} if proxy else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": "/{proxy+}" if proxy else "/",
            "httpMethod": request.method,
            "extendedRequestId": request_id,
            "requestTime": datetime.fromtimestamp(when, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": account_id,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(when * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
            "domainName": headers.get("Host") or headers.get("host") or "localhost",
            "apiId": LOCAL_API_ID,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


class BadProxyResponse(ValueError):
    """The function answered something API Gateway would refuse (it answers 502)."""


@dataclass(frozen=True)
class HttpResponse:
    """What goes back on the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_response(response: Any) -> HttpResponse:
    """Turn a proxy integration response into HTTP; BadProxyResponse when it is malformed."""
    if not isinstance(response, Mapping) or "statusCode" not in response:
        raise BadProxyResponse(f"not a proxy response: {type(response).__name__}")
    try:
        status = int(response["statusCode"])
    except (TypeError, ValueError) as error:
        raise BadProxyResponse(f"statusCode {response['statusCode']!r}") from error
    if not 100 <= status <= 599:
        raise BadProxyResponse(f"statusCode {status}")
    # API Gateway merges both header maps; multiValueHeaders wins for a name in both.
    merged: dict[str, list[str]] = {}
    for name, value in (response.get("headers") or {}).items():
        merged[str(name)] = [str(value)]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        merged[str(name)] = [str(v) for v in values]
    raw = response.get("body")
    if raw is None:
        body = b""
    elif not isinstance(raw, str):
        raise BadProxyResponse(f"body is a {type(raw).__name__}, not a string")
    elif response.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except ValueError as error:
            raise BadProxyResponse("isBase64Encoded but the body is not base64") from error
    else:
        body = raw.encode("utf-8")
    headers = [
        (name, value)
        for name, values in merged.items()
        if name.lower() not in ("content-length", "transfer-encoding", "connection")
        for value in values
    ]
    return HttpResponse(status, headers, body)


class LocalApiServer:
    """A threaded HTTP server on loopback in front of one API function.

    ``environment`` returns the function's environment; it is applied to ``os.environ`` under
    ``invoke_lock`` for each call, which is the lock the queue pollers hold while their handlers
    run: in-process, handlers share module state, so invocations run one at a time.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        environment: Callable[[], dict[str, str]],
        invoke_lock: threading.Lock,
        function_name: str,
        region: str,
        account_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = LOCAL_STAGE,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
        metrics_bridge: MetricsBridge | None = None,
    ) -> None:
        self.handler = handler
        #: Turns the function's EMF output into CloudWatch metrics (None: plain calls).
        self.metrics_bridge = metrics_bridge
        self.environment = environment
        self.invoke_lock = invoke_lock
        self.function_name = function_name
        self.region = region
        self.account_id = account_id
        self.stage = stage
        self.max_request_bytes = max_request_bytes
        self.timeout_seconds = timeout_seconds
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` once started (no trailing slash, no stage: routes sit at /)."""
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Bind, serve on a daemon thread, return the URL."""
        self._server = ThreadingHTTPServer(self._address, _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-api", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop accepting requests and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> LocalApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def invoke(self, request: ApiRequest) -> HttpResponse:
        """Run the function on ``request``, as API Gateway's proxy integration would."""
        event = proxy_event(request, stage=self.stage, account_id=self.account_id)
        try:
            with self.invoke_lock:
                # The deadline starts with the invocation, not while waiting for the lock.
                context = LocalLambdaContext(
                    function_name=self.function_name,
                    region=self.region,
                    account_id=self.account_id,
                    timeout_seconds=self.timeout_seconds,
                    aws_request_id=event["requestContext"]["requestId"],
                )
                # Invocations are serialised, so the process env can be the function's own.
                with function_environment(self.environment()):
                    answer = call_handler(
                        self.metrics_bridge, self.function_name, self.handler, event, context
                    )
            return http_response(answer)
        except Exception:
            # API Gateway answers 502 for a failed or malformed integration response; the
            # traceback stays in the server's log, never in the response.
            log.exception("%s failed on %s %s", self.function_name, request.method, request.target)
            return HttpResponse(
                HTTPStatus.BAD_GATEWAY,
                [("Content-Type", "application/json")],
                error_body("INTERNAL_ERROR", "Internal server error"),
            )


def _handler_class(server: LocalApiServer) -> type[BaseHTTPRequestHandler]:
    class _RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "enroll-local-api"
        timeout = IDLE_CONNECTION_SECONDS

        def _dispatch(self) -> None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                # API Gateway needs the size up front too; chunked uploads are not worth it here.
                self._send_error(
                    HTTPStatus.LENGTH_REQUIRED, "LENGTH_REQUIRED", "send Content-Length"
                )
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self._send_error(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", "bad Content-Length")
                return
            if length < 0:
                self._send_error(HTTPStatus.BAD_REQUEST, "BAD_REQUEST", "bad Content-Length")
                return
            if length > server.max_request_bytes:
                # The function never sees it; the connection closes after the answer.
                self.close_connection = True
                self._drain(length)
                self._send_error(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    "REQUEST_TOO_LARGE",
                    f"the request is {length} bytes; the API accepts at most "
                    f"{server.max_request_bytes} bytes",
                )
                return
            body = self.rfile.read(length) if length else b""
            request = ApiRequest(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
            )
            response = server.invoke(request)
            self._send(response)

        def _drain(self, length: int) -> None:
            left = length if length <= MAX_DRAIN_BYTES else 0
            while left > 0:
                chunk = self.rfile.read(min(DRAIN_CHUNK_BYTES, left))
                if not chunk:
                    break
                left -= len(chunk)

        def _send(self, response: HttpResponse) -> None:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def _send_error(self, status: int, code: str, message: str) -> None:
            self._send(
                HttpResponse(
                    status, [("Content-Type", "application/json")], error_body(code, message)
                )
            )

        def __getattr__(self, name: str) -> Any:
            # Every method (TRACE, CONNECT, made-up ones) goes to the function: which methods a
            # path allows is the resolver's business, not the server's.
            if name.startswith("do_"):
                return self._dispatch
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            # One line per request at debug level only: the runner's output stays readable.
            log.debug("%s - %s", self.address_string(), format % args)

    return _RequestHandler
