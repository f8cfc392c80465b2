"""The in-memory job cache the pipeline functions match against and look jobs up in.

Cache design (docs/architecture.md, "Job cache"): every job write through `JobStore` also bumps, in the same
transaction, its account's **change marker** (sysevents.jobs.changes): a sequence number, the last writes
with their commit times, and the latest's commit time. A `JobCache` never listens: before it answers (a
match, a lookup) it checks that its last sync *started* at most `max_age` seconds before the call, and
otherwise syncs in the calling thread: one query of the markers changed since its previous sync began (less
`margin`), then one read per changed job it holds (`changes.missed` says which; an account whose marker no
longer lists them all is forgotten and reloaded on demand). So a job saved at T is matched for every event
that reaches ingest after T + max_age, whatever the instance did meanwhile (Cloud Functions throttle the
CPU between requests: a background listener would lag there, a sync in the request does not). The cache
holds jobs on demand, bounded (`max_jobs`, least recently used first out): a whole account when an event
of it is matched (one query of that account's jobs), a single job when a sink looks one up by (aid, id)
(one get). `jobs(where)` (the bigquery function's backfill ticks) reads every job once and keeps those it
wants.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from google.api_core import exceptions as gexc

from sysevents.events.model import SystemEvent
from sysevents.jobs.changes import Legacy, Marker, missed
from sysevents.jobs.matching import JobId, JobIndex
from sysevents.jobs.model import InvalidJob, Job
from sysevents.jobs.registry import job_of
from sysevents.jobs.store import JobStore

log = logging.getLogger(__name__)


class JobCacheUnavailable(OSError):
    """Firestore did not answer the job cache (retried by the caller: ingest answers 5xx, Pub/Sub redelivers)."""


class JobCache:
    """Jobs in memory, held on demand and never older than `max_age` seconds when answering (see the
    module docstring); `match` and `get` read Firestore only to sync or to load what they do not hold.

    `clock` (monotonic seconds) is what `max_age` is measured with; `margin` (seconds) is how long after
    its commit timestamp a job write may become visible (clock skew, transactions committing out of
    timestamp order): each sync asks for the markers changed since its previous sync began less it."""

    def __init__(
        self,
        store: JobStore,
        start_timeout: float = 60.0,
        *,
        max_age: float = 1.0,
        max_jobs: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
        margin: float = 1.0,
    ):
        self._store = store
        self._client = store.client
        self._group = store.client.collection_group(store.name)
        self._accounts_name = store.accounts.id
        self._timeout = start_timeout
        self.max_age = max_age
        self.max_jobs = max_jobs
        self.margin = margin
        self._clock = clock
        self._lock = threading.Lock()  # the data below
        self._sync_lock = threading.Lock()  # syncs and loads, one at a time (see _load)
        self._index = JobIndex()
        self._complete: OrderedDict[str, None] = OrderedDict()  # accounts held whole, least recent first
        self._singles: OrderedDict[JobId, None] = OrderedDict()  # jobs held for lookups only
        self._ids_of: dict[str, set[str]] = {}  # account -> ids of its jobs held
        self._listing: dict[JobId, Job] | None = None  # jobs() : every stored job passing _where
        self._where: Callable[[Job], bool] | None = None
        self._since: int | None = None  # wall time (µs since the epoch) the latest completed sync started
        self._seen: dict[str, int] = {}  # account -> its marker's seq, as that sync read it
        self._legacy_seq: int | None = None  # the seq of the marker of every account (changes.LEGACY_ID)
        self._synced = float("-inf")  # clock() when the latest completed sync started
        self.updated_at: datetime | None = None  # wall time when that sync started
        self.invalid: dict[str, str] = {}  # job path -> why its stored document was skipped
        self.documents_read = 0  # documents this cache read from Firestore (each is billed as one read)
        self.syncs = 0

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> JobCache:
        """Read the change marker once (so a Firestore that does not answer fails the start)."""
        self.sync()
        return self

    def stop(self) -> None:
        """Forget every job held (nothing runs in the background)."""
        with self._sync_lock, self._lock:
            self._forget()
            self._since, self._seen, self._legacy_seq, self._synced = None, {}, None, float("-inf")

    # -- freshness -------------------------------------------------------------------------------------------
    def fresh(self, arrived: float | None = None) -> None:
        """Make sure the cache has synced in a sync that started at most max_age before `arrived` (clock()
        of the request; default now): the freshness guarantee. Concurrent callers share one sync."""
        arrived = self._clock() if arrived is None else arrived
        if self._synced >= arrived - self.max_age:
            return
        with self._sync_lock:
            if self._synced < arrived - self.max_age:
                self._sync()

    def sync(self) -> None:
        """Sync now, whatever the age (health checks, start)."""
        with self._sync_lock:
            self._sync()

    def _sync(self) -> None:  # holds _sync_lock
        started, wall = self._clock(), time.time()
        now = int(wall * 1e6)
        since = (now if self._since is None else self._since) - int(self.margin * 1e6)
        read, markers = self._call(lambda: self._store.changes.changed_since(since, self._timeout))
        self.documents_read += read
        keys: set[JobId] = set()
        with self._lock:
            wanted = self._listing is not None
            for m in markers:
                if isinstance(m, Legacy):
                    keys |= self._legacy(m, wanted)
                    continue
                ids = missed(m, since, self._seen.get(m.aid))
                if ids is None:  # more writes than its marker lists: forget the account, reload on demand
                    if wanted or m.aid in self._ids_of or m.aid in self._complete:
                        log.warning(
                            "job cache: account %s changed more than its marker lists; reloading", m.aid
                        )
                    self._drop_account(m.aid)
                    if wanted:
                        self._listing = None
                    continue
                keys |= {(m.aid, i) for i in ids if wanted or self._holds(m.aid, i)}
        self._refresh(sorted(keys))
        # what this sync saw, kept only once it has read everything it missed (a failed read syncs again)
        self._seen = {m.aid: m.seq for m in markers if isinstance(m, Marker)}
        self._legacy_seq = next((m.seq for m in markers if isinstance(m, Legacy)), self._legacy_seq)
        self._since, self._synced, self.updated_at = now, started, datetime.fromtimestamp(wall, UTC)
        self.syncs += 1

    def _legacy(self, m: Legacy, wanted: bool) -> set[JobId]:  # holds _lock
        """What the marker of every account (written by a version before markers per account) says changed;
        when it cannot tell (first seen, too far behind, reset), forget all and reload on demand."""
        seen = self._legacy_seq
        if seen == m.seq:
            return set()
        first = m.recent[0][0] if m.recent else m.seq + 1
        if seen is None or m.seq < seen or first > seen + 1:
            if len(self._index) or self._listing is not None:
                log.warning("job cache: the marker of every account changed; reloading")
            self._forget()
            return set()
        return {(a, i) for n, a, i in m.recent if n > seen and (wanted or self._holds(a, i))}

    def _call(self, fn: Callable):
        try:
            return fn()
        except (gexc.GoogleAPIError, gexc.RetryError) as err:
            raise JobCacheUnavailable(f"job cache: Firestore did not answer: {err}") from err

    # -- what is held ----------------------------------------------------------------------------------------
    def _holds(self, aid: str, job_id: str) -> bool:
        return aid in self._complete or (aid, job_id) in self._singles

    def _forget(self) -> None:  # holds _lock
        self._index = JobIndex()
        self._complete.clear()
        self._singles.clear()
        self._ids_of.clear()
        self._listing = None

    def _apply(self, snap, *, matchable: bool) -> Job | None:
        """Hold what a snapshot says of its job (present or deleted). Every read runs under _sync_lock, one
        at a time, so a snapshot applied is never older than the one it replaces."""
        account = snap.reference.parent.parent
        if account is None or account.parent.id != self._accounts_name:
            return None  # a `jobs` collection somewhere else: not ours
        key: JobId = (account.id, snap.id)
        if not snap.exists:
            self._drop_job(key)
            return None
        try:
            job = job_of(snap)
        except InvalidJob as err:
            self._drop_job(key)
            self.invalid[snap.reference.path] = err.reason
            log.error("job cache: skipping invalid job %s: %s", snap.reference.path, err.reason)
            return None
        self.invalid.pop(snap.reference.path, None)
        self._index.upsert(job, matchable=matchable)
        self._ids_of.setdefault(key[0], set()).add(key[1])
        return job

    def _drop_job(self, key: JobId) -> None:
        self._index.remove(key)
        self._singles.pop(key, None)
        ids = self._ids_of.get(key[0])
        if ids is not None:
            ids.discard(key[1])

    def _drop_account(self, aid: str) -> None:
        self._complete.pop(aid, None)
        for job_id in self._ids_of.pop(aid, ()):
            self._index.remove((aid, job_id))
            self._singles.pop((aid, job_id), None)

    def _evict(self, keep: str | None = None) -> None:
        """Least recently used out until at most max_jobs are held (single jobs first, then accounts)."""
        while len(self._index) > self.max_jobs:
            if self._singles:
                key, _ = self._singles.popitem(last=False)
                self._drop_job(key)
            elif self._complete and next(iter(self._complete)) != keep:
                self._drop_account(next(iter(self._complete)))
            else:
                return  # only the account being used is left: it is held whole, however large

    def _refresh(self, keys: list[JobId]) -> None:  # holds _sync_lock
        if not keys:
            return
        refs = [self._store.ref(aid, job_id) for aid, job_id in keys]
        snaps = self._call(lambda: list(self._client.get_all(refs, timeout=self._timeout)))
        self.documents_read += len(snaps)
        with self._lock:
            for snap in snaps:
                account = snap.reference.parent.parent
                aid = account.id if account is not None else ""
                if self._holds(aid, snap.id):
                    self._apply(snap, matchable=aid in self._complete)
                if self._listing is not None:
                    self._list(snap)

    # -- loads (under _sync_lock: a sync between a load's read and its apply would skip the jobs read) ----
    def _account(self, aid: str) -> None:
        """Hold the account's jobs whole (one query), so matching its events is complete."""
        with self._lock:
            if aid in self._complete:
                self._complete.move_to_end(aid)
                return
        with self._sync_lock:
            with self._lock:
                if aid in self._complete:
                    return
            try:
                snaps = self._call(lambda: list(self._store.collection(aid).stream(timeout=self._timeout)))
            except ValueError:  # not a valid document path: an account with no jobs
                snaps = []
            self.documents_read += max(1, len(snaps))  # a query is billed one read at least
            with self._lock:
                found = {s.id for s in snaps}
                for job_id in list(self._ids_of.get(aid, ())):
                    if job_id not in found:  # held singly, since deleted
                        self._drop_job((aid, job_id))
                for snap in snaps:
                    self._singles.pop((aid, snap.id), None)
                    self._apply(snap, matchable=True)
                self._complete[aid] = None
                self._evict(keep=aid)

    def _single(self, aid: str, job_id: str) -> Job | None:
        with self._sync_lock:
            with self._lock:
                if self._holds(aid, job_id):
                    return self._index.get((aid, job_id))
            try:
                ref = self._store.ref(aid, job_id)
            except ValueError:  # not a valid document path: no such job
                return None
            snap = self._call(lambda: ref.get(timeout=self._timeout))
            self.documents_read += 1
            with self._lock:
                job = self._apply(snap, matchable=False)
                if job is not None:
                    self._singles[(aid, job_id)] = None
                    self._evict()
                return job

    def _list(self, snap) -> None:  # holds _lock
        """Keep the listing's copy of a job as a snapshot says (deleted, invalid, or not wanted: out)."""
        account = snap.reference.parent.parent
        if account is None or account.parent.id != self._accounts_name or self._listing is None:
            return
        key: JobId = (account.id, snap.id)
        job = None
        if snap.exists:
            try:
                job = job_of(snap)
            except InvalidJob as err:
                self.invalid[snap.reference.path] = err.reason
        if job is not None and (self._where is None or self._where(job)):
            self._listing[key] = job
        else:
            self._listing.pop(key, None)

    def _list_all(self, where: Callable[[Job], bool] | None) -> None:
        with self._sync_lock:
            if self._listing is not None and self._where is where:
                return
            listing: dict[JobId, Job] = {}
            with self._lock:
                self._listing, self._where = listing, where
            read = 0
            try:
                for snap in self._group.stream(timeout=self._timeout):  # one at a time: no list of all
                    read += 1
                    with self._lock:
                        self._list(snap)
            except BaseException as err:
                with self._lock:
                    self._listing = None
                if isinstance(err, gexc.GoogleAPIError | gexc.RetryError):
                    raise JobCacheUnavailable(f"job cache: Firestore did not answer: {err}") from err
                raise
            finally:
                self.documents_read += max(1, read)

    # -- what callers ask ------------------------------------------------------------------------------------
    def match(self, event: SystemEvent) -> list[Job]:
        """Active jobs whose filter selects the event, as of at most max_age before this call."""
        self.fresh()
        self._account(event.aid)
        return self._index.match(event)

    def get(self, aid: str, job_id: str, *, min_version: int | None = None) -> Job | None:
        """The account's job (None: it has none by that id), as of at most max_age before this call; with
        `min_version`, read again from Firestore if the copy held is older than that version."""
        self.fresh()
        key = (aid, job_id)
        with self._lock:
            held, job = self._holds(aid, job_id), self._index.get(key)
            if key in self._singles:
                self._singles.move_to_end(key)
            elif aid in self._complete:
                self._complete.move_to_end(aid)
        if not held:
            return self._single(aid, job_id)
        if min_version is None or (job is not None and job.version >= min_version):
            return job
        # Held, but older than the caller knows it to be (a change or creation not synced yet): read it.
        with self._sync_lock:
            self._refresh([key])
        return self._index.get(key)

    def jobs(self, where: Callable[[Job], bool] | None = None) -> list[Job]:
        """Every stored job (active and paused) for which `where` holds (default: all). The first call
        reads every job once and keeps only those (another `where` reads them all again); later calls
        sync. Kept apart from the jobs held for matching and lookups, and not bounded by max_jobs."""
        self.fresh()
        self._list_all(where)
        with self._lock:
            return list((self._listing or {}).values())

    def __len__(self) -> int:
        return len(self._index)

    def status(self) -> dict:
        """For health checks (it syncs first): jobs and accounts held, when the sync began, the accounts whose
        markers it read, reads so far, and which stored jobs were skipped as invalid."""
        self.sync()
        return {
            "jobs": len(self._index),
            "accounts": len(self._complete),
            "listed": None if self._listing is None else len(self._listing),
            "read_time": self.updated_at.isoformat() if self.updated_at else None,
            "changed_accounts": len(self._seen),
            "max_age_ms": round(self.max_age * 1000),
            "documents_read": self.documents_read,
            "syncs": self.syncs,
            "invalid_jobs": dict(self.invalid),
        }
