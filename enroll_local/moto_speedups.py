"""Four costs of moto's server that the local stack pays on every request, removed.

Profiled with ``py-spy record --gil`` on the local stack enrolling 200 synthetic photos, the
endpoint's process held the GIL for about 80 % of the run, and three moto internals took 40 %
of that while doing the same work again and again:

- **Step Functions parses the definition for every execution** (ANTLR, ~20 % of the GIL time):
  ``ExecutionWorker._get_evaluation_entrypoint`` re-parses the same ASL text each time. The
  parsed program is a tree of declarations that evaluation does not mutate (an execution's
  state lives in its ``Environment``), so one parse per definition text serves every execution.
- **Every JSONPath is compiled again on every evaluation** (jsonpath_ng builds a PLY parser
  per call, ~6 %): compiled paths are immutable, so they are cached by their text.
- **Every Step Functions task builds a new boto3 client** (``boto_client_for``, ~9 %: a client
  costs milliseconds of botocore model loading and hook copying). Clients are thread-safe and
  its arguments vary only with the endpoint, so one client per (region, service, endpoint) is
  kept.
- **GetQueueAttributes builds every attribute of the queue twice per requested name** (~13 %):
  ``Queue.attributes`` is a property that counts the queue's messages three times over, and
  ``SQSBackend.get_queue_attributes`` evaluates it twice per name asked for. It is evaluated
  once per request here, with the same answer.

The load benchmark (10,000 photos) found what a profile of 200 could not: moto's SQS is
O(messages in the queue) per request, with a datetime built for every message it looks at.
``Message.visible`` / ``delayed`` read the clock through ``utcnow()`` once per message; every
SendMessage evaluates ``Queue.attributes`` (the three approximate counts) to read one flag; and
ReceiveMessage asks GetQueueAttributes for the retention period once per message, which builds
``Queue.attributes`` again, so a receive cost O(n^2). At a backlog of 1,500 messages the stack fell
from 5 to 3 photos/s and kept slowing. Here the clock is read with ``time.time()`` (the same UTC
epoch), once per count, and the retention period straight from the queue: the same answers,
and a backlog of thousands costs microseconds per message instead of milliseconds.

Each patch keeps moto's behaviour and answers; none changes what an AWS caller sees. They are
applied once per process (``apply()`` is idempotent) by ``local_endpoint``.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

#: Distinct definitions / JSONPaths a process keeps parsed (the pipeline has a handful).
PARSE_CACHE_SIZE = 256

_applied = False
_apply_lock = threading.Lock()


def apply() -> None:
    """Patch moto in this process (once)."""
    global _applied
    with _apply_lock:
        if _applied:
            return
        _cache_state_machine_parse()
        _cache_jsonpath_parse()
        _single_queue_attributes()
        _reuse_task_clients()
        _cheap_sqs_clock()
        _applied = True


def _cache_state_machine_parse() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    @functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
    def parsed_program(definition: str) -> Any:
        return AmazonStateLanguageParser.parse(definition)[0]

    def entrypoint(self: Any) -> Any:
        return parsed_program(self._evaluation_details.state_machine_details.definition)

    ExecutionWorker._get_evaluation_entrypoint = entrypoint  # type: ignore[method-assign]


def _cache_jsonpath_parse() -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    json_path.parse = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(json_path.parse)  # type: ignore[attr-defined]
    result_path.parse = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(result_path.parse)  # type: ignore[attr-defined]


def _single_queue_attributes() -> None:
    from moto.sqs.models import SQSBackend

    original = SQSBackend.get_queue_attributes

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> Any:
        if not attribute_names or "All" in attribute_names:
            return original(self, queue_name, attribute_names)
        queue = self.get_queue(queue_name)
        computed = queue.attributes
        valid = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
        if any(name not in valid for name in attribute_names):
            return original(self, queue_name, attribute_names)  # moto's own error
        return {
            name: computed[name]
            for name in attribute_names
            if name in computed and computed[name] is not None
        }

    SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]


def _reuse_task_clients() -> None:
    import sys

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_factory,  # noqa: F401  (imports every task module that uses the client)
    )
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port

    clients: dict[tuple[str, ...], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:  # a task with its own role: moto's own path
            return original(region, service, state_credentials)
        # The endpoint the client is built for is part of the key: a process may serve several
        # local endpoints one after another (MOTO_PORT), or run in-process mock_aws.
        key = (region, service, moto_server_port(), str(botocore_stubber.enabled))
        with lock:
            client = clients.get(key)
            if client is None:
                client = clients[key] = original(region, service)
            return client

    # Each task module imported the function by name: rebind it where it was imported.
    for module in list(sys.modules.values()):
        if getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


def _cheap_sqs_clock() -> None:
    from moto.sqs.models import Message, Queue, SQSBackend

    def now_ms() -> float:
        return time.time() * 1000.0  # moto's unix_time_millis(), without a datetime

    Message.visible = property(lambda self: now_ms() > self.visible_at)  # type: ignore[method-assign,assignment]
    Message.delayed = property(lambda self: now_ms() < self.delayed_until)  # type: ignore[method-assign,assignment]

    def messages(self: Any) -> list[Any]:
        now = now_ms()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def not_visible(self: Any) -> int:
        now = now_ms()
        return sum(1 for m in self._messages if not now > m.visible_at)

    def delayed(self: Any) -> int:
        now = now_ms()
        return sum(1 for m in self._messages if now < m.delayed_until)

    Queue.messages = property(messages)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[method-assign,assignment]

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > time.time())

    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
