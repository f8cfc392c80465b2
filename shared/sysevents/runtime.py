"""The one context of a function instance: settings, topology, clients, and the components built on them.

A `Runtime` owns everything an instance keeps between requests: the Firestore, Pub/Sub and BigQuery
clients, the job store and job cache, the template sandbox, the delivery accounting, rate limits and
ordering queues, the BigQuery writer, backfill runs, alert state, the quarantine index and API keys (what
belongs to one sink -- its HTTP sender, its SMTP mailer -- its sink builds). Components are built on first use (a
function only pays for what it uses) and shared by the instance's request threads. Nothing else keeps
module-level state: code receives the Runtime (or the component) it works with.

`instance()` is the Runtime of this process, used by the HTTP entry points (sysevents.http).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from google.cloud import firestore

from sysevents.config import Settings
from sysevents.events.producers import Producers
from sysevents.jobs.cache import JobCache
from sysevents.jobs.model import Job
from sysevents.jobs.store import JobStore
from sysevents.obs import logs
from sysevents.obs.metering import Meter, meter_delays, meter_firestore, meter_publisher
from sysevents.topology import Topology, load
from sysevents.transport.pubsub import Publisher

if TYPE_CHECKING:
    from sysevents.admin.keys import KeyStore
    from sysevents.alerts.store import AlertStore
    from sysevents.auditlog.writer import TableWriter
    from sysevents.backfill.runs import Runs
    from sysevents.consent.store import ConsentStore
    from sysevents.delivery.accounting import DeliveryLog
    from sysevents.delivery.ordering import KeyQueues
    from sysevents.delivery.ratelimit import RateLimiter
    from sysevents.shares.caps import Caps
    from sysevents.templates.sandbox import Sandbox
    from sysevents.transport.delays import DelayQueue
    from sysevents.transport.quarantine import Quarantine

T = TypeVar("T")
_lock = threading.Lock()


@cache
def _logging() -> None:
    logs.configure(logs.function_name())


class Runtime:
    def __init__(self, cfg: Settings | None = None, topology: Topology | None = None):
        _logging()
        self.settings = cfg or Settings()
        self.topology = topology or load()
        self.firestore = firestore.Client(project=self.settings.project)
        self.publisher = Publisher(self.settings.project)
        self.meter: Meter | None = None
        if self.settings.meter:  # counting calls for the benchmarks (sysevents.obs.metering)
            self.meter = Meter()
            meter_firestore(self.firestore, self.meter)
            meter_publisher(self.publisher, self.meter)
        self.jobs = JobStore(self.firestore, self.settings.jobs_collection, self.settings.accounts_collection)
        self._parts: dict[str, Any] = {}
        self._lock = threading.RLock()  # components build on others (alert state on the sandbox)

    def part(self, name: str, build: Callable[[], T]) -> T:
        """The instance's one `name` component, built by `build` on first use."""
        part = self._parts.get(name)
        if part is None:
            with self._lock:
                part = self._parts.get(name)
                if part is None:
                    part = self._parts[name] = build()
        return part

    # -- components, built on first use ---------------------------------------------------------------------
    @property
    def cache(self) -> JobCache:
        s = self.settings
        return self.part(
            "cache",
            lambda: JobCache(
                self.jobs,
                s.job_cache_start_timeout,
                max_age=s.job_cache_max_age_ms / 1000,
                max_jobs=s.job_cache_max_jobs,
                margin=s.job_cache_margin_ms / 1000,
            ).start(),
        )

    @property
    def producers(self) -> Producers:
        """The producer bindings events are admitted by (sysevents.events.producers)."""
        s = self.settings
        return self.part(
            "producers", lambda: Producers.of(s.producers, s.producer_keys, sealed=s.sealing_keys is not None)
        )

    @property
    def bigquery(self):
        """The BigQuery client (google.cloud.bigquery.Client); the emulator's when
        SYSEVENTS_BIGQUERY_ENDPOINT is set."""

        def build():
            from google.cloud import bigquery

            if self.settings.bigquery_endpoint:
                from google.auth.credentials import AnonymousCredentials

                return bigquery.Client(
                    project=self.settings.project,
                    credentials=AnonymousCredentials(),
                    client_options={"api_endpoint": self.settings.bigquery_endpoint},
                )
            return bigquery.Client(project=self.settings.project, location=self.settings.bigquery_location)

        return self.part("bigquery", build)

    @property
    def sandbox(self) -> Sandbox:
        """Template rendering with bounded time and memory (worker processes), in turns across accounts."""
        from sysevents.templates.sandbox import Sandbox

        return self.part("sandbox", lambda: Sandbox.of(self.settings))

    @property
    def accounting(self) -> DeliveryLog:
        """Per-job attempt log, counters and dead letters (sysevents.delivery.accounting)."""
        from sysevents.delivery.accounting import DeliveryLog

        return self.part(
            "accounting",
            lambda: DeliveryLog(self.firestore, retention_days=self.settings.webhook_log_retention_days),
        )

    @property
    def delays(self) -> DelayQueue:
        """The durable delay queue (Cloud Tasks; its emulator locally): sysevents.transport.delays."""
        from sysevents.transport.delays import DelayQueue

        s = self.settings

        def build() -> DelayQueue:
            if not s.delay_queue:
                raise RuntimeError("SYSEVENTS_DELAY_QUEUE is not set: the delay queue is needed to wait")
            queue = DelayQueue(
                s.project,
                s.delay_queue,
                emulator_host=s.tasks_emulator_host,
                pubsub_url=s.pubsub_url,
                service_account=s.delay_service_account,
            )
            return meter_delays(queue, self.meter) if self.meter is not None else queue

        return self.part("delays", build)

    @property
    def limiter(self) -> RateLimiter:
        """Per-job delivery rate limits across instances (sysevents.delivery.ratelimit)."""
        from sysevents.delivery.ratelimit import RateLimiter

        return self.part("limiter", lambda: RateLimiter(self.firestore))

    @property
    def shares(self) -> Caps:
        """Per-account caps: deliveries in progress here, tasks due, audit searches, replays (sysevents.shares)."""
        from sysevents.shares.caps import Caps

        return self.part("shares", lambda: Caps(self.firestore, self.settings))

    @property
    def key_queues(self) -> KeyQueues:
        """Ordered jobs' per-subject queues while a delivery waits (sysevents.delivery.ordering)."""
        from sysevents.delivery.ordering import KeyQueues

        return self.part("key_queues", lambda: KeyQueues(self.firestore, self.publisher))

    @property
    def runs(self) -> Runs:
        """Backfill run state, leases and parked events (sysevents.backfill.runs)."""
        from sysevents.backfill.runs import Runs

        return self.part("runs", lambda: Runs(self.firestore, self.settings.exports_collection))

    @property
    def table_writer(self) -> TableWriter:
        """Micro-batched, validated streaming inserts, shared by the instance's request threads."""
        from sysevents.auditlog.writer import TableWriter

        s = self.settings

        def build() -> TableWriter:
            return TableWriter(
                self.bigquery,
                max_rows=s.bigquery_batch_rows,
                max_wait=s.bigquery_batch_wait_ms / 1000,
                timeout=s.bigquery_timeout,
                location=s.bigquery_location,
            )

        return self.part("table_writer", build)

    @property
    def alert_store(self) -> AlertStore:
        """Alert groups, pending events, the notification outbox and firing alerts (sysevents.alerts)."""
        from sysevents.alerts.store import AlertStore

        return self.part("alert_store", lambda: AlertStore(self.firestore, self.settings))

    @property
    def quarantine(self) -> Quarantine:
        """The index of quarantined events (sysevents.transport.quarantine)."""
        from sysevents.transport.quarantine import Quarantine

        return self.part("quarantine", lambda: Quarantine(self.firestore))

    @property
    def consent(self) -> ConsentStore:
        """Email recipients' consent and each account's email policy (sysevents.consent.store)."""
        from sysevents.consent.store import ConsentStore

        s = self.settings
        period = timedelta(hours=s.email_confirm_hours)
        return self.part("consent", lambda: ConsentStore(self.firestore, s.email_collection_prefix, period))

    @property
    def keys(self) -> KeyStore:
        from sysevents.admin.keys import KeyStore

        s = self.settings
        return self.part(
            "keys",
            lambda: KeyStore(
                self.firestore,
                s.accounts_collection,
                s.api_keys_collection,
                s.operator_key_hash,
                revoke_max=s.api_key_revoke_max,
            ),
        )

    # -- lookups ---------------------------------------------------------------------------------------------
    def job_for(self, aid: str, job_id: str, version: int) -> Job | None:
        """The job a delivery names, at least at the version ingest matched it with: from the cache (as of
        at most its max age before this call), read again from Firestore when the copy held is older than
        that version (a just-created or just-changed job). None when the job no longer exists."""
        return self.cache.get(aid, job_id, min_version=version)

    def close(self) -> None:
        """Stop what this Runtime started (sandbox workers, the job cache)."""
        for name in ("sandbox", "cache"):
            part = self._parts.pop(name, None)
            if part is not None:
                (part.close if name == "sandbox" else part.stop)()


_instance: Runtime | None = None


def instance() -> Runtime:
    """This process's Runtime (built on first use from the environment)."""
    global _instance
    if _instance is None:
        with _lock:
            if _instance is None:
                _instance = Runtime()
    return _instance


def reset() -> None:
    """Forget this process's Runtime (tests that change the environment)."""
    global _instance
    with _lock:
        old, _instance = _instance, None
    if old is not None:
        old.close()


def health(rt: Runtime, function: str) -> tuple[dict, int]:
    """GET on a push function: its job cache's freshness (the tests and `make dev` wait on it), and with
    SYSEVENTS_METER what it has counted so far."""
    out: dict[str, Any] = {"function": function, "job_cache": rt.cache.status()}
    if rt.meter is not None:
        out["meter"] = rt.meter.snapshot()
    return out, 200
