"""The local stack: one AWS endpoint on loopback, the pipeline's resources, and its pollers.

``LocalStack`` starts moto's threaded server with the Rekognition emulator plugged in
(``enroll_local.rekognition.server.local_endpoint``), creates the resources of
``infra.config.PipelineConfig`` on it, points every boto3 client of this process at it
(``AWS_ENDPOINT_URL``) and runs one poller thread per queue (upload, association, erasure) that
invokes the very same handler functions the cloud runs; with ``api_port`` set it also serves the
query API function over HTTP on loopback (``api_server.py``). It is what ``enroll local`` and
``enroll demo`` run, and what the end-to-end tests use.

moto's state (S3, SQS, DynamoDB, Step Functions) lives in this process's memory only; the
emulator's collections, faces and users persist in ``data_dir`` when one is given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto.core.config import default_user_config

from enroll_local.rekognition.engines import make_engine
from enroll_local.rekognition.moto_plugin import install, read_s3_object
from enroll_local.rekognition.server import local_endpoint
from enroll_local.rekognition.service import EmulatorConfig, RekognitionEmulator
from enroll_local.runner.api_server import LocalApiServer
from enroll_local.runner.call_counter import CallCounter, counting_requests, tag_runner_client
from enroll_local.runner.lambda_context import LocalLambdaContext, function_environment
from enroll_local.runner.metrics_bridge import MetricsBridge, call_handler
from enroll_local.runner.pollers import EventSourceMapping, QueuePoller
from enroll_local.runner.resources import Clients, Endpoints, provision
from enroll_local.runner.workers import DEFAULT_MAX_LOCAL_CONCURRENCY, EnvironmentPool
from infra.config import PipelineConfig

log = logging.getLogger(__name__)

#: moto's default account: every local resource lives in it.
LOCAL_ACCOUNT_ID = "123456789012"
#: The local endpoint accepts any credentials; these keep boto3 from searching for real ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
#: boto3 retries inside the runner's own clients (the handlers configure their own).
RUNNER_CLIENT_MAX_ATTEMPTS = 5
#: How often ``wait_until_idle`` looks at the queues and executions (seconds).
IDLE_POLL_SECONDS = 0.25
#: The handler each queue-driven function runs (module:attribute, importable from functions/).
INDEX_HANDLER = "index_photo.handler:handler"
ASSOCIATE_HANDLER = "associate_faces.handler:handler"
ERASE_HANDLER = "erase_user.handler:handler"
ISOLATIONS = ("process", "inline")


@dataclass(frozen=True)
class LocalSettings:
    """Knobs of the local stack only; the deployed stack's values live in PipelineConfig."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    #: Port of the query API on ``host``: None = not served, 0 = any free port.
    api_port: int | None = None
    region: str = "us-east-1"
    engine: str = "dlib"
    data_dir: Path | None = None
    #: Emulator knobs (EmulatorConfig), e.g. update_delay_seconds; None = its defaults.
    emulator_config: EmulatorConfig | None = None
    #: Local retry delay for failed messages (seconds); AWS waits the full visibility timeout.
    retry_delay_seconds: int = 2
    #: Visibility of a received message while its handler runs (seconds).
    in_flight_visibility_seconds: int = 300
    #: Override of the associate poller's batching window (seconds); None = PipelineConfig's.
    associate_batching_window_seconds: float | None = None
    #: Extra environment for the handlers (e.g. a short ACTIVATION_WAIT_SCHEDULE in tests).
    extra_environment: dict[str, str] = field(default_factory=dict)
    start_pollers: bool = True
    #: Keep every delivered message body on the pollers (tests re-send them to check idempotency).
    record_deliveries: bool = False
    #: Turn the handlers' EMF output into CloudWatch metrics on the endpoint (metrics_bridge.py).
    bridge_metrics: bool = True
    #: Run the reconcile function every this many seconds (the deployed schedule's stand-in);
    #: None = never on its own (tests call ``LocalStack.reconcile()``). ``enroll local`` sets it.
    reconcile_interval_seconds: float | None = None
    #: Where the queue-driven functions run: "process" = each concurrent invocation in an
    #: execution environment of its own (workers.py), up to the mapping's concurrency, as Lambda
    #: does; "inline" = in this process, one invocation at a time (tests that patch handler code
    #: in-process need it).
    isolation: str = "process"
    #: Local cap on one function's concurrent invocations (a process each; this machine's cores
    #: set the useful number, not the deployed ESM's MaximumConcurrency).
    max_local_concurrency: int = DEFAULT_MAX_LOCAL_CONCURRENCY
    #: ``module:function`` hooks each new execution environment calls before importing its
    #: handler (Lambda's AWS_LAMBDA_EXEC_WRAPPER counterpart; the fault suite's fault plans).
    worker_preload: tuple[str, ...] = ()


class PortInUseError(OSError):
    """The requested endpoint port is taken by another program."""


def ensure_port_free(host: str, port: int) -> None:
    """Raise PortInUseError when ``host:port`` cannot be bound (port 0 always can).

    moto's threaded server exits its thread on a taken port and leaves the caller waiting
    forever, so the runner checks first. SO_REUSEADDR as the server sets it: a port left in
    TIME_WAIT by a stack that just stopped is free to reuse.
    """
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUseError(
                error.errno, f"port {port} on {host} is in use ({error.strerror})"
            ) from error


class LocalStack:
    """The whole pipeline on one local endpoint; use as a context manager."""

    def __init__(
        self, settings: LocalSettings | None = None, config: PipelineConfig | None = None
    ) -> None:
        self.settings = settings or LocalSettings()
        self.config = config or PipelineConfig()
        self.emulator: RekognitionEmulator | None = None
        self.endpoints: Endpoints | None = None
        self.clients: Clients | None = None
        self.pollers: list[QueuePoller] = []
        self._exit = contextlib.ExitStack()
        self._invoke_lock = threading.Lock()
        self.api_server: LocalApiServer | None = None
        self.metrics_bridge: MetricsBridge | None = None
        self._reconcile_stop = threading.Event()
        self._reconcile_thread: threading.Thread | None = None
        #: Warm execution environments per function, kept across reset() like Lambda's.
        self._pools: dict[tuple[Any, ...], EnvironmentPool] = {}
        #: Requests the endpoint served since start()/reset() (call_counter.py).
        self.call_counter: CallCounter | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Endpoints:
        """Serve the endpoint, create the resources, start the pollers; return the endpoints."""
        # One line per HTTP request drowns everything else; the runner reports what matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        ensure_port_free(self.settings.host, self.settings.port)
        try:
            self.emulator = self._make_emulator(self.settings.engine, self.settings.emulator_config)
            url = self._exit.enter_context(
                local_endpoint(self.emulator, host=self.settings.host, port=self.settings.port)
            )
            self.call_counter = self._exit.enter_context(counting_requests(url))
            self.clients = self._make_clients(url)
            for runner_client in vars(self.clients).values():
                tag_runner_client(runner_client)
            if self.settings.bridge_metrics:
                cloudwatch = tag_runner_client(self._cloudwatch_client(url))
                self.metrics_bridge = MetricsBridge(cloudwatch)
            self.endpoints = self._provision(url)
            self._exit.enter_context(function_environment(self.lambda_environment()))
            self._exit.enter_context(_s3_events_with_version_ids())
            if self.settings.start_pollers:
                self.start_pollers()
            if self.settings.api_port is not None:
                self._start_api(self.settings.api_port)
            if self.settings.reconcile_interval_seconds is not None:
                self._start_reconciler(self.settings.reconcile_interval_seconds)
            self.call_counter.reset()
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def stop(self) -> None:
        """Stop the pollers (after their current batch) and the endpoint; restore the env."""
        self._stop_reconciler()
        self.stop_pollers()
        self.close_environments()
        self._exit.close()

    def close_environments(self) -> None:
        """Kill every execution environment (the next invocations start cold)."""
        for pool in self._pools.values():
            pool.close()
        self._pools = {}

    def _environments(self, function_name: str, handler_path: str, concurrency: int) -> Any:
        """The pool of execution environments for one function (None when inline)."""
        local = self.settings
        if local.isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, not {local.isolation!r}")
        if local.isolation == "inline":
            return None
        size = max(1, min(concurrency, local.max_local_concurrency))
        key = (function_name, handler_path, size, local.worker_preload)
        pool = self._pools.get(key)
        if pool is None:
            # Another shape for this function (a test changed the preload): retire the old one.
            for old in [k for k in self._pools if k[0] == function_name]:
                self._pools.pop(old).close()
            pool = EnvironmentPool(function_name, handler_path, size, local.worker_preload)
            self._pools[key] = pool
        return pool

    def reset(
        self, *, engine: str | None = None, emulator_config: EmulatorConfig | None = None
    ) -> Endpoints:
        """Forget every resource and face, then provision again (tests share one endpoint).

        Handlers keep their clients (created once per "cold start" with this endpoint), so a
        test suite can run many scenarios against one stack.
        """
        assert self.endpoints is not None, "start() first"
        running = bool(self.pollers)
        self.stop_pollers()
        request = urllib.request.Request(
            f"{self.endpoints.endpoint_url}/moto-api/reset", method="POST"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass
        self.settings = replace(
            self.settings,
            engine=engine or self.settings.engine,
            emulator_config=emulator_config or self.settings.emulator_config,
        )
        self.emulator = self._make_emulator(self.settings.engine, self.settings.emulator_config)
        # Process-wide hooks another user of moto in this process may have changed meanwhile
        # (tests mixing mock_aws and this stack): point them at this stack again.
        install(self.emulator)
        os.environ["MOTO_PORT"] = self.endpoints.endpoint_url.rsplit(":", 1)[-1]
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        self.endpoints = replace(
            self._provision(self.endpoints.endpoint_url), api_url=self.endpoints.api_url
        )
        if running:
            self.start_pollers()
        if self.call_counter is not None:
            self.call_counter.reset()
        return self.endpoints

    def counted_calls(self) -> dict[str, dict[str, dict[str, int]]]:
        """Requests counted since start()/reset() (a snapshot; see call_counter.py)."""
        assert self.call_counter is not None, "start() first"
        return self.call_counter.snapshot()

    # -- pieces ------------------------------------------------------------------------------

    def _make_emulator(
        self, engine: str, emulator_config: EmulatorConfig | None
    ) -> RekognitionEmulator:
        data_dir = self.settings.data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        return RekognitionEmulator(
            make_engine(engine),
            emulator_config or EmulatorConfig(),
            s3_reader=read_s3_object,
            data_dir=data_dir / "rekognition" if data_dir is not None else None,
        )

    def _make_clients(self, url: str) -> Clients:
        def client(service: str) -> Any:
            return boto3.client(  # type: ignore[call-overload]
                service,
                endpoint_url=url,
                region_name=self.settings.region,
                aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                config=Config(
                    retries={"max_attempts": RUNNER_CLIENT_MAX_ATTEMPTS, "mode": "standard"}
                ),
            )

        return Clients(
            s3=client("s3"),
            sqs=client("sqs"),
            dynamodb=client("dynamodb"),
            rekognition=client("rekognition"),
            stepfunctions=client("stepfunctions"),
        )

    def _cloudwatch_client(self, url: str) -> Any:
        return boto3.client(
            "cloudwatch",
            endpoint_url=url,
            region_name=self.settings.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def _provision(self, url: str) -> Endpoints:
        assert self.clients is not None
        return provision(
            self.clients,
            self.config,
            endpoint_url=url,
            region=self.settings.region,
            account_id=LOCAL_ACCOUNT_ID,
        )

    def _start_api(self, port: int) -> None:
        """Serve the query API function on ``host:port`` and record its URL in the endpoints."""
        from query_api.handler import handler as api_handler

        assert self.endpoints is not None
        ensure_port_free(self.settings.host, port)
        server = LocalApiServer(
            api_handler,
            environment=lambda: self.lambda_environment(self.config.api_service_name),
            invoke_lock=self._invoke_lock,
            function_name=self.config.api_service_name,
            region=self.settings.region,
            account_id=LOCAL_ACCOUNT_ID,
            host=self.settings.host,
            port=port,
            timeout_seconds=self.config.api_function_timeout_s,
            metrics_bridge=self.metrics_bridge,
        )
        self.api_server = self._exit.enter_context(server)
        self.endpoints = replace(self.endpoints, api_url=server.url)

    def lambda_environment(self, service_name: str | None = None) -> dict[str, str]:
        """What a handler sees: the deployed function's env, pointed at this stack."""
        assert self.endpoints is not None
        env = self.config.lambda_environment(
            service_name=service_name or self.config.index_service_name,
            association_queue_url=self.endpoints.association_queue_url,
            upload_queue_url=self.endpoints.upload_queue_url,
            activation_state_machine_arn=self.endpoints.state_machine_arn,
            erasure_queue_url=self.endpoints.erasure_queue_url or "",
            upload_dlq_url=self.endpoints.upload_dlq_url,
            association_dlq_url=self.endpoints.association_dlq_url,
        )
        env.update(LOCAL_CREDENTIALS)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoints.endpoint_url,
                "AWS_DEFAULT_REGION": self.settings.region,
                "AWS_REGION": self.settings.region,
            }
        )
        env.update(self.settings.extra_environment)
        return env

    def start_pollers(self) -> None:
        """One poller thread per queue: the event source mappings of the deployed stack."""
        from associate_faces.handler import handler as associate_handler
        from erase_user.handler import handler as erase_handler
        from index_photo.handler import handler as index_handler

        assert self.endpoints is not None and self.clients is not None
        config, endpoints, local = self.config, self.endpoints, self.settings
        window = (
            config.associate_batching_window_s
            if local.associate_batching_window_seconds is None
            else local.associate_batching_window_seconds
        )
        mappings = [
            EventSourceMapping(
                function_name=config.index_service_name,
                handler=index_handler,
                environment=self.lambda_environment(config.index_service_name),
                queue_url=endpoints.upload_queue_url,
                queue_arn=_queue_arn(endpoints, config.upload_queue_name),
                batch_size=config.index_batch_size,
                batching_window_seconds=config.index_batching_window_s,
                function_timeout_seconds=config.index_function_timeout_s,
                in_flight_visibility_seconds=local.in_flight_visibility_seconds,
                retry_delay_seconds=local.retry_delay_seconds,
                concurrency=config.index_max_concurrency,
            ),
            EventSourceMapping(
                function_name=config.associate_service_name,
                handler=associate_handler,
                environment=self.lambda_environment(config.associate_service_name),
                queue_url=endpoints.association_queue_url,
                queue_arn=_queue_arn(endpoints, config.association_queue_name),
                batch_size=config.associate_batch_size,
                batching_window_seconds=window,
                function_timeout_seconds=config.associate_function_timeout_s,
                in_flight_visibility_seconds=local.in_flight_visibility_seconds,
                retry_delay_seconds=local.retry_delay_seconds,
                concurrency=config.associate_max_concurrency,
            ),
            EventSourceMapping(
                function_name=config.erasure_service_name,
                handler=erase_handler,
                environment=self.lambda_environment(config.erasure_service_name),
                queue_url=endpoints.erasure_queue_url or "",
                queue_arn=_queue_arn(endpoints, config.erasure_queue_name),
                batch_size=config.erasure_batch_size,
                batching_window_seconds=0,
                function_timeout_seconds=config.erasure_function_timeout_s,
                in_flight_visibility_seconds=local.in_flight_visibility_seconds,
                retry_delay_seconds=local.retry_delay_seconds,
                concurrency=config.erasure_max_concurrency,
            ),
        ]
        handler_paths = {
            config.index_service_name: INDEX_HANDLER,
            config.associate_service_name: ASSOCIATE_HANDLER,
            config.erasure_service_name: ERASE_HANDLER,
        }
        self.pollers = [
            QueuePoller(
                mapping,
                self.clients.sqs,
                region=local.region,
                account_id=LOCAL_ACCOUNT_ID,
                invoke_lock=self._invoke_lock,
                record_bodies=local.record_deliveries,
                metrics_bridge=self.metrics_bridge,
                environments=self._environments(
                    mapping.function_name,
                    handler_paths[mapping.function_name],
                    mapping.concurrency,
                ),
            )
            for mapping in mappings
        ]
        for poller in self.pollers:
            poller.start()

    def reconcile(self) -> dict[str, Any]:
        """Invoke the reconcile function once, as its schedule would; its report."""
        from reconcile.handler import handler as reconcile_handler

        assert self.endpoints is not None
        name = self.config.reconcile_service_name
        context = LocalLambdaContext(
            function_name=name,
            region=self.settings.region,
            account_id=LOCAL_ACCOUNT_ID,
            timeout_seconds=self.config.reconcile_function_timeout_s,
        )
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        with self._invoke_lock, function_environment(self.lambda_environment(name)):
            report: dict[str, Any] = call_handler(
                self.metrics_bridge, name, reconcile_handler, event, context
            )
        return report

    def _start_reconciler(self, interval_seconds: float) -> None:
        def loop() -> None:
            while not self._reconcile_stop.wait(interval_seconds):
                try:
                    report = self.reconcile()
                except Exception:
                    # The next tick tries again, as the next scheduled invocation would.
                    log.exception("the reconcile function raised")
                    continue
                if report.get("total"):
                    log.warning("reconciler repaired %s", report.get("repaired"))

        self._reconcile_stop.clear()
        self._reconcile_thread = threading.Thread(target=loop, name="reconciler", daemon=True)
        self._reconcile_thread.start()

    def _stop_reconciler(self) -> None:
        self._reconcile_stop.set()
        if self._reconcile_thread is not None:
            self._reconcile_thread.join(timeout=self.config.reconcile_function_timeout_s)
            self._reconcile_thread = None

    def stop_pollers(self) -> None:
        """Stop every poller after its current batch."""
        for poller in self.pollers:
            poller.stop()
        self.pollers = []

    def redrive(self, dlq_url: str, source_url: str) -> int:
        """Move every message of ``dlq_url`` back to ``source_url``; the number moved.

        What ``aws sqs start-message-move-task`` does in AWS (moto has no move tasks): each
        message is sent again with its body and attributes, then deleted from the DLQ, so a
        crash in between duplicates a message rather than losing it (the handlers are
        idempotent).
        """
        assert self.clients is not None
        sqs = self.clients.sqs
        moved = 0
        while True:
            messages = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return moved
            for message in messages:
                sqs.send_message(
                    QueueUrl=source_url,
                    MessageBody=message["Body"],
                    MessageAttributes=message.get("MessageAttributes") or {},
                )
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1

    def write_endpoints(self, path: Path) -> None:
        """Write endpoints.json (see ``Endpoints``)."""
        assert self.endpoints is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.endpoints.to_json() + "\n")

    def queue_depths(self) -> dict[str, int]:
        """Visible + in-flight + delayed messages per queue (DLQs included).

        Delayed ones count: a record the associate function sent back with a delay (conflict
        backoff) is still work to do, so the stack is not idle while it waits.
        """
        assert self.endpoints is not None and self.clients is not None
        depths = {}
        for url in (
            self.endpoints.upload_queue_url,
            self.endpoints.association_queue_url,
            self.endpoints.erasure_queue_url,
            self.endpoints.upload_dlq_url,
            self.endpoints.association_dlq_url,
            self.endpoints.erasure_dlq_url,
        ):
            if url is None:
                continue
            attributes = self.clients.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            depths[url.rsplit("/", 1)[-1]] = sum(int(v) for v in attributes.values())
        return depths

    def running_executions(self) -> int:
        """Activation executions still running."""
        assert self.endpoints is not None and self.clients is not None
        pages = self.clients.stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=self.endpoints.state_machine_arn, statusFilter="RUNNING"
        )
        return sum(len(page["executions"]) for page in pages)

    def wait_until_idle(self, timeout_seconds: float, settle_seconds: float = 1.0) -> bool:
        """Wait until no message is queued or in flight (DLQs aside), no poller is busy and no
        execution runs, for ``settle_seconds`` in a row. Returns False on timeout."""
        assert self.endpoints is not None
        deadline = time.monotonic() + timeout_seconds
        quiet_since: float | None = None
        work_queues = tuple(
            url.rsplit("/", 1)[-1]
            for url in (
                self.endpoints.upload_queue_url,
                self.endpoints.association_queue_url,
                self.endpoints.erasure_queue_url,
            )
            if url is not None
        )
        while time.monotonic() < deadline:
            depths = self.queue_depths()
            quiet = (
                all(depths[name] == 0 for name in work_queues)
                and not any(p.busy for p in self.pollers)
                and self.running_executions() == 0
            )
            now = time.monotonic()
            if not quiet:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle_seconds:
                return True
            time.sleep(IDLE_POLL_SECONDS)
        return False


def _queue_arn(endpoints: Endpoints, name: str) -> str:
    return f"arn:aws:sqs:{endpoints.region}:{endpoints.account_id}:{name}"


@contextlib.contextmanager
def _s3_events_with_version_ids() -> Iterator[None]:
    """Give moto's S3 event notifications the ``versionId`` (and ``sequencer``) AWS sends.

    In a versioning-enabled bucket AWS names the object version in every ObjectCreated record;
    moto 5.2 leaves it out, so the pipeline would record each photo without its version and the
    API could not tie a ledger item to the S3 version it came from.
    """
    from moto.s3 import notifications

    original = notifications._get_s3_event

    def with_version(event_name: str, bucket: Any, key: Any, notification_id: str) -> Any:
        event = original(event_name, bucket, key, notification_id)
        version = getattr(key, "version_id", None)
        for record in event["Records"]:
            obj = record["s3"]["object"]
            if version and version != "null":
                obj.setdefault("versionId", version)
            # Hex, increasing with time: orders events of one key, as AWS documents.
            obj.setdefault("sequencer", f"{time.time_ns():016X}")
        return event

    notifications._get_s3_event = with_version  # type: ignore[assignment]
    try:
        yield
    finally:
        notifications._get_s3_event = original  # type: ignore[assignment]


def local_client(endpoints: Endpoints, service: str) -> Any:
    """A boto3 client of ``service`` on a running local stack's endpoint (any credentials do)."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoints.endpoint_url,
        region_name=endpoints.region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def load_endpoints(path: Path) -> Endpoints:
    """Read an endpoints.json written by ``enroll local``."""
    return Endpoints(**json.loads(path.read_text()))
