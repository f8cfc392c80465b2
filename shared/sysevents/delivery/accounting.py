"""Per-job delivery accounting in Firestore, the same for every workflow: attempt log, counters and dead
letters.

Layout, under `job_state/{job key}` (the key is account, job id and generation: a job deleted and created
again starts from nothing, and nothing of one account is reachable from another's):
- `attempts/{settle key hash}`: one record per attempt on the destination (time, attempt number, outcome,
  status, latency, error, event id, delivery id), removed by a TTL policy on `expire_at` (bounded
  retention); a settling that reached no destination (filtered, a wait) leaves a record with
  `attempted: false` there too, which the attempt log does not list.
- `counters/{0..SHARDS-1}`: sharded counters (a document takes about one sustained write per second;
  shards spread a busy job's writes): received, delivered, accepted, filtered, dead_lettered,
  failed_attempts, delayed (waiting in the delay queue: for a retry or a rate-limit slot), pushed_back (the
  receiver's "slow down" answers: waits, not failed attempts), and `last_delivered_at`.
- `dead_letters/{delivery id}`: each dead-lettered delivery (message, reason, attempts), for listing and
  replay; same TTL.
- `templates/{version}` (webhook jobs: sysevents.sinks.webhook.versions) and, on the `job_state/{key}`
  document itself, the failure streak (`streak_failures`, `streak_since`: sysevents.sinks.webhook.autodisable)
  are kept by the webhook sink; `stats` reports the streak, and `forget` deletes them with the rest.

The counters reconcile: received = delivered + accepted + filtered + dead_lettered + pending. "received"
counts deliveries the sink has seen at least once; "pending" ones have not ended yet: most of them are
"delayed" (in the delay queue, for a retry or a rate-limit slot), the rest in flight (messages
still in the Pub/Sub backlog are not counted yet: that is the subscription's `num_undelivered_messages`). "accepted" counts deliveries taken into the sink's own
durable state to be sent later (an email digest, a backfill's hand-over). "filtered" counts deliveries
skipped on purpose: the job was paused, deleted or re-created after the event matched, or its policy
dropped the event (silence, mute window).

**Group commit.** The records and counter increments of an instance's concurrent deliveries are written
in one Firestore commit (sysevents.transport.coalesce: the first delivery to settle leads; while COMMITS_IN_FLIGHT
commits run, the others gather and go in the next one; no background thread). Each delivery's `record`
returns only once the commit holding its records is durable, so an answered push is always counted; the
counter increments of one job in one commit are summed into one counter write. Commits hold at most 500
writes (Firestore's limit).

**Counted once.** Each settling is recorded under its key (the message's `settle` attribute, else its Pub/Sub
message id: sysevents.delivery.attempt.Attempt), created with a precondition that it does not exist yet. A
message settled twice -- Pub/Sub redelivered it after the instance crashed between the commit and its
answer, or a commit was retried after it had applied -- is counted once when the second settling
decided the same as the first (the same release put away, or none), which every redelivery does unless
the receiver changed its answer meanwhile; then the second is counted as a delivery of its own, so the
counters still reconcile. Detecting a repeat costs one read, only when a commit meets one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from sysevents.delivery.outcome import Settled
from sysevents.delivery.ratelimit import pace_of
from sysevents.jobs.model import Job
from sysevents.transport.coalesce import Coalescer, Stats

log = logging.getLogger("sysevents.delivery")

SHARDS = 8
COLLECTION = "job_state"
COUNTERS = ("received", "delivered", "accepted", "filtered", "dead_lettered", "failed_attempts", "delayed",
            "pushed_back")  # fmt: skip
TERMINAL = tuple(s.value for s in Settled if s.ends)
"""The outcomes that end a delivery; each is also the name of its counter."""
SUBCOLLECTIONS = ("attempts", "counters", "dead_letters", "templates")
MAX_WRITES = 500
"""Firestore's limit of writes in one commit."""
COMMIT_RECORDS = MAX_WRITES // 2
"""Records per group commit: each writes its record and at most one counter document."""
COMMITS_IN_FLIGHT = 2
"""Group commits of one instance running at once; deliveries settling meanwhile gather for the next."""
REPEATS_ROUNDS = 5


@dataclass(frozen=True)
class _Record:
    """One settling's writes, waiting for its group commit."""

    job_doc: Any  # job_state/{job key}
    event_id: str
    counts: dict[str, int]
    doc: dict[str, Any] | None = None  # the attempt record (or marker) document
    doc_id: str | None = None  # its id, fixed by the settle key; None: an auto id (not de-duplicated)
    then: str | None = None  # the key of the release this settling put away
    delivered_at: datetime | None = None
    path: str = field(default="", compare=False)  # doc_id's full path, to find repeats


def _counts(outcome: str, first_seen: bool, delayed: int, pushed_back: bool = False) -> dict[str, int]:
    """The counters one settling moves."""
    counts: dict[str, int] = {"pushed_back": 1} if pushed_back else {}
    if first_seen:
        counts["received"] = 1
    if outcome in TERMINAL:
        counts[str(outcome)] = 1
    elif outcome != Settled.WAITING:
        counts["failed_attempts"] = 1
    if delayed:
        counts["delayed"] = delayed
    return counts


class DeliveryLog:
    def __init__(
        self,
        client: firestore.Client,
        collection: str = COLLECTION,
        retention_days: int = 7,
        *,
        commits_in_flight: int = COMMITS_IN_FLIGHT,
    ):
        self.client = client
        self.collection = client.collection(collection)
        self.retention = timedelta(days=retention_days)
        self._commits: Coalescer[str, _Record, BaseException | None] = Coalescer(
            self._commit, max_size=COMMIT_RECORDS, max_wait=0, max_in_flight=commits_in_flight
        )

    @property
    def commit_stats(self) -> Stats:
        """Group commits so far: how many, and records per commit."""
        return self._commits.stats

    def doc(self, job: Job):
        return self.collection.document(job.key)

    @staticmethod
    def _shard(event_id: str) -> str:
        return str(int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16) % SHARDS)

    # -- writes per delivery ----------------------------------------------------------------------------
    def record(
        self,
        job: Job,
        *,
        event_id: str,
        delivery_id: str,
        attempt: int,
        outcome: str,
        first_seen: bool,
        status: int | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
        log_attempt: bool = True,
        delayed: int = 0,
        key: str | None = None,
        then: str | None = None,
        pushed_back: bool = False,
    ) -> None:
        """One settling's record and the counters it moves, written in a group commit with the concurrent
        deliveries' (returns once it is durable). The record is the attempt's (`log_attempt`: it reached
        the destination), or with a `key` a marker of the settling. `delayed` moves the count of
        deliveries waiting in the delay queue (+1 put away, -1 released). `key` (the message's settle
        key) makes a repeat of this settling count once; `then` is the key of the release it put away."""
        now = datetime.now(UTC)
        doc: dict[str, Any] | None = None
        if log_attempt or key:  # reached no destination: a marker, so that a repeat is known (not logged)
            doc = {"at": now, "attempt": attempt, "outcome": outcome, "event_id": event_id,
                   "webhook_id": delivery_id, "expire_at": now + self.retention}  # fmt: skip
            if log_attempt:
                error = None if outcome == "delivered" else (error or "")[:1000]
                doc.update({"status": status, "latency_ms": latency_ms, "error": error})
            else:
                doc["attempted"] = False
            if key:
                doc["then"] = then
        counts = _counts(outcome, first_seen, delayed, pushed_back)
        job_doc = self.doc(job)
        doc_id = hashlib.sha256(key.encode()).hexdigest()[:40] if key and doc is not None else None
        entry = _Record(
            job_doc=job_doc,
            event_id=event_id,
            counts=counts,
            doc=doc,
            doc_id=doc_id,
            then=then,
            delivered_at=now if outcome == "delivered" else None,
            path=f"{job_doc.path}/attempts/{doc_id}" if doc_id else "",
        )
        [failed] = self._commits.submit("", [entry])
        if failed is not None:
            raise failed

    def _commit(self, _: str, entries: list[_Record]) -> list[BaseException | None]:
        """Write `entries` in one commit. A settling recorded before (its record exists) is dropped when it
        decided the same as then, else kept as a delivery of its own; the rest are committed again."""
        results: list[BaseException | None] = [None] * len(entries)
        pending = self._first_of_each_key(entries, list(range(len(entries))))
        for _round in range(REPEATS_ROUNDS):
            if not pending:
                return results
            batch = self.client.batch()
            failed: dict[int, BaseException] = {}
            writes = self._stage(batch, [entries[i] for i in pending], failed)
            assert writes <= MAX_WRITES
            for n, err in failed.items():
                results[pending[n]] = err
            pending = [i for n, i in enumerate(pending) if n not in failed]
            if not writes:
                return results
            try:
                batch.commit()
                return results
            except gexc.AlreadyExists:
                pending = self._without_repeats(entries, pending)
            except Exception as err:  # every delivery of this commit hears of it (the push is retried)
                for i in pending:
                    results[i] = err
                return results
        for i in pending:
            results[i] = RuntimeError("accounting: records kept meeting concurrent repeats; not written")
        return results

    def _first_of_each_key(self, entries: list[_Record], pending: list[int]) -> list[int]:
        """Two settlings under one key in one commit (a message redelivered while it was still in flight):
        the later is dropped, or kept as a delivery of its own if it decided otherwise."""
        seen: dict[str, _Record] = {}
        out = []
        for i in pending:
            e = entries[i]
            first = seen.get(e.path) if e.path else None
            if first is None:
                if e.path:
                    seen[e.path] = e
                out.append(i)
            elif first.then != e.then:
                entries[i] = self._own(e)
                out.append(i)
        return out

    def _without_repeats(self, entries: list[_Record], pending: list[int]) -> list[int]:
        keyed = [i for i in pending if entries[i].path]
        found = {
            s.reference.path: s
            for s in self.client.get_all(
                [entries[i].job_doc.collection("attempts").document(entries[i].doc_id) for i in keyed]
            )
            if s.exists
        }
        out = []
        for i in pending:
            e = entries[i]
            snap = found.get(e.path) if e.path else None
            if snap is None:
                out.append(i)
            elif (snap.to_dict() or {}).get("then") != e.then:
                log.warning(
                    "accounting: event %s settled again, differently (release %s, then %s): counted again",
                    e.event_id, (snap.to_dict() or {}).get("then"), e.then,
                )  # fmt: skip
                entries[i] = self._own(e)
                out.append(i)
            # else: recorded already, as decided now: counted once
        return out

    @staticmethod
    def _own(e: _Record) -> _Record:
        """A repeated settling that decided otherwise: counted as a delivery of its own (under an auto id),
        so the counters still reconcile."""
        doc = e.doc if e.doc is not None and e.doc.get("attempted", True) else None
        return replace(e, doc=doc, doc_id=None, path="")

    def _stage(self, batch: Any, entries: list[_Record], failed: dict[int, BaseException]) -> int:
        """Put `entries`' writes in `batch`: each record, and per job one counter shard with their sums. A
        record that cannot be written (a value Firestore cannot hold) goes in `failed`, by index, alone."""
        writes = 0
        per_job: dict[str, tuple[Any, str, dict[str, Any]]] = {}
        for n, e in enumerate(entries):
            if e.doc is not None:
                attempts = e.job_doc.collection("attempts")
                try:
                    if e.doc_id:
                        batch.create(attempts.document(e.doc_id), e.doc)
                    else:
                        batch.set(attempts.document(), e.doc)
                except Exception as err:  # encoding failed: this record only; the batch is unchanged
                    failed[n] = err
                    continue
                writes += 1
            job_doc, shard, sums = per_job.setdefault(
                e.job_doc.path, (e.job_doc, self._shard(e.event_id), {})
            )
            for name, n in e.counts.items():
                sums[name] = sums.get(name, 0) + n
            if (
                e.delivered_at is not None
                and (sums.get("last_delivered_at") or e.delivered_at) <= e.delivered_at
            ):
                sums["last_delivered_at"] = e.delivered_at
        for job_doc, shard, sums in per_job.values():
            inc: dict[str, Any] = {
                k: (v if k == "last_delivered_at" else firestore.Increment(v)) for k, v in sums.items() if v
            }
            if inc:  # (moves that cancel out, e.g. a wait put away and one released, write nothing)
                batch.set(job_doc.collection("counters").document(shard), inc, merge=True)
                writes += 1
        return writes

    def dead_letter(self, job: Job, delivery_id: str, data: bytes, attributes: dict[str, str]) -> None:
        now = datetime.now(UTC)
        self.doc(job).collection("dead_letters").document(delivery_id).set(
            {
                "data": data.decode(),
                "attributes": attributes,
                "reason": attributes.get("reason", ""),
                "attempts": int(attributes.get("attempts") or 0),
                "event_id": attributes.get("event_id", ""),
                "dead_lettered_at": now,
                "expire_at": now + self.retention,
            }
        )

    # -- reads (admin API) ----------------------------------------------------------------------------
    def last_delivered_at(self, job: Job) -> datetime | None:
        found = [s.to_dict().get("last_delivered_at") for s in self._counter_docs(job)]
        found = [t for t in found if t is not None]
        return max(found) if found else None

    def _counter_docs(self, job: Job) -> list:
        return list(self.doc(job).collection("counters").stream())

    def stats(self, job: Job) -> dict[str, Any]:
        totals = dict.fromkeys(COUNTERS, 0)
        last = None
        for snap in self._counter_docs(job):
            doc = snap.to_dict()
            for k in COUNTERS:
                totals[k] += int(doc.get(k) or 0)
            t = doc.get("last_delivered_at")
            last = t if t and (last is None or t > last) else last
        totals["pending"] = totals["received"] - sum(totals[k] for k in TERMINAL)
        state = self.doc(job).get()
        doc = state.to_dict() if state.exists else {}
        since = doc.get("streak_since")
        failing = bool(since and doc.get("streak_failures")) and not (last is not None and last >= since)
        totals["last_delivered_at"] = last.isoformat() if last else None
        totals["consecutive_failures"] = doc.get("streak_failures", 0) if failing else 0
        totals["failing_since"] = since.isoformat() if failing else None
        limits = self.doc(job).collection("limits").document("rate").get()
        totals["learned_pace"] = pace_of(limits.to_dict() or {}, time.time()) if limits.exists else None
        return totals

    def attempts(self, job: Job, limit: int = 50, before: datetime | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        q = self.doc(job).collection("attempts").order_by("at", direction=firestore.Query.DESCENDING)
        if before is not None:
            q = q.where(filter=FieldFilter("at", "<", before))
        out = []
        cursor = None
        while len(out) < limit:
            page = list((q.start_after(cursor) if cursor is not None else q).limit(limit).stream())
            for snap in page:
                doc = snap.to_dict()
                if doc.pop("attempted", True) is False:
                    continue  # a settling that reached no destination: not in the attempt log
                doc.pop("expire_at", None)
                doc.pop("then", None)
                doc["at"] = doc["at"].isoformat()
                out.append(doc)
            if len(page) < limit:
                break
            cursor = page[-1]
        return out[:limit]

    def dead_letters(
        self, job: Job, since: datetime | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        q = self.doc(job).collection("dead_letters").order_by("dead_lettered_at")
        if since is not None:
            q = q.where(filter=FieldFilter("dead_lettered_at", ">=", since))
        return [{"webhook_id": s.id, **s.to_dict()} for s in q.limit(limit).stream()]

    def forget_dead_letter(self, job: Job, delivery_id: str) -> None:
        self.doc(job).collection("dead_letters").document(delivery_id).delete()

    def forget(self, job: Job) -> int:
        """Delete everything kept for this job generation (the job was deleted); returns documents deleted."""
        return self.client.recursive_delete(self.doc(job))
