"""Counting what a function instance costs: its Firestore calls, Pub/Sub publishes, delay-queue tasks and the
pushes it serves. Off unless `SYSEVENTS_METER` is true; then every push function's GET / reports the
counts under `meter` (bench/bench_webhook.py and bench/bench_cost.py read them).

Firestore is counted at the library boundary, on the GAPIC client every call goes through (`commit`,
`batch_get_documents`, `run_query`, ...): as calls (RPCs, `firestore.calls`) and as the units Firestore
bills (`firestore.reads`, `.writes`, `.deletes`): a commit or batch write bills each write, a document get
one read per document asked for (found or not), a query one read per document returned and at least
one, an aggregation one read. The job cache's reads (its change markers, the jobs it loads) go through
the same client and are counted. Pub/Sub publishes are counted per message with their size (data and
attributes); pushes served are counted per request with the pushed message's size, and `busy_s` adds
up the time the instance had at least one request in flight (what request-based billing charges for).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_WRITE_METHODS = ("commit", "batch_write")
_READ_STREAMS = ("run_query", "run_aggregation_query")
_CALLS_ONLY = ("begin_transaction", "rollback", "list_documents", "list_collection_ids", "partition_query")


class Meter:
    """Thread-safe counters, plus the time at least one request was in flight."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._in_flight = 0
        self._busy_since = 0.0
        self._busy = 0.0

    def add(self, name: str, n: float = 1) -> None:
        with self._lock:
            self.counts[name] += n

    @contextmanager
    def request(self, body: bytes, kind: str = "pushes") -> Iterator[None]:
        """One request served (`pushes`: with its pushed message's size; `scheduled`: Cloud Scheduler's),
        its time counted in the instance's busy time."""
        self.add(kind)
        if kind == "pushes":
            self.add("push_bytes", pushed_message_bytes(body))
        with self._lock:
            if self._in_flight == 0:
                self._busy_since = self._clock()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._busy += self._clock() - self._busy_since

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            out = dict(self.counts)
            busy = self._busy + (self._clock() - self._busy_since if self._in_flight else 0.0)
        out["busy_s"] = round(busy, 6)
        return out


def message_bytes(data: bytes, attributes: dict[str, str]) -> int:
    """A Pub/Sub message's size as billed: its data and its attributes' keys and values."""
    return len(data) + sum(len(k.encode()) + len(str(v).encode()) for k, v in attributes.items())


def pushed_message_bytes(body: bytes) -> int:
    """The size of the message a push request carries (0 if it is not a push body)."""
    try:
        msg = json.loads(body).get("message") or {}
        data = base64.b64decode(msg.get("data") or "")
        return message_bytes(data, msg.get("attributes") or {})
    except (ValueError, AttributeError, TypeError):
        return 0


def meter_firestore(client: Any, meter: Meter) -> Any:
    """Count every call `client` (a google.cloud.firestore.Client) makes, and the units billed for it."""
    api = client._firestore_api  # the GAPIC client every Firestore call of the library goes through

    def wrap(name: str, count: Callable[[Any, Any], Any]) -> None:
        call = getattr(api, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            meter.add("firestore.calls")
            meter.add(f"firestore.{name}")
            result = call(*args, **kwargs)
            return count(kwargs.get("request") or (args[0] if args else None), result)

        setattr(api, name, counted)

    def writes(request: Any, result: Any) -> Any:
        for w in _field(request, "writes") or ():
            meter.add("firestore.deletes" if _field(w, "delete") else "firestore.writes")
        return result

    def gets(request: Any, result: Any) -> Any:
        meter.add("firestore.reads", len(_field(request, "documents") or ()))
        return result

    def query(request: Any, result: Any) -> Any:
        def stream() -> Iterator[Any]:
            found = 0
            try:
                for response in result:
                    if _field(response, "document") or _field(response, "result"):
                        found += 1
                    yield response
            finally:
                meter.add("firestore.reads", max(found, 1))

        return stream()

    for name in _WRITE_METHODS:
        wrap(name, writes)
    wrap("batch_get_documents", gets)
    for name in _READ_STREAMS:
        wrap(name, query)
    for name in _CALLS_ONLY:
        wrap(name, lambda request, result: result)
    return client


def meter_publisher(publisher: Any, meter: Meter) -> Any:
    """Count each message `publisher` (sysevents.transport.pubsub.Publisher) publishes, with its size."""
    publish = publisher.publish

    def counted(topic: str, data: bytes, ordering_key: str = "", **attributes: str) -> Any:
        meter.add("pubsub.published")
        meter.add("pubsub.published_bytes", message_bytes(data, attributes))
        return publish(topic, data, ordering_key, **attributes)

    object.__setattr__(publisher, "publish", counted)
    return publisher


def meter_delays(delays: Any, meter: Meter) -> Any:
    """Count each wait put on the delay queue (a Cloud Tasks task: created, then dispatched once)."""
    put = delays.put

    def counted(release: Any, at: Any, name: str) -> None:
        meter.add("tasks.created")
        meter.add("tasks.bytes", message_bytes(release.data, release.attributes))
        put(release, at, name)

    delays.put = counted
    return delays


def _field(obj: Any, name: str) -> Any:
    """A field of a request or response: a dict, a proto-plus message, or a raw protobuf."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name)
    except AttributeError:
        return None
