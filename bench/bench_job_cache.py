"""The job cache at scale: 1k, 10k and 100k jobs over 10k accounts, against the real Firestore emulator.

For each size, fresh Python processes (as new function instances) start a job cache in each role and
report the time until it is done, the Firestore documents it read, and the memory it holds (RSS delta
after a garbage collection: what the instance keeps, not a peak):

- ingest: the cold start, then a first event of each of 200 accounts (each account's jobs load once),
  then how long a new job takes to reach this running cache (the write call until a match has it;
  p50 and max of 10 writes; bounded by the cache's max age, SYSEVENTS_JOB_CACHE_MAX_AGE_MS);
- sink: the cold start, then 1,000 lookups by (aid, id) of stored jobs, as deliveries look jobs up;
- ticks: the cold start, then the jobs with a backfill listed (the bigquery function's backfill ticks:
  every job is read once, only those are kept);
- all: the cold start, then every job listed and kept (what a cache of every job holds).

The jobs are written once, cumulatively (1k, then 9k more, then 90k more), in batched writes of 500.
Printed: one table, the same figures relative to the smallest size of the run (per 1,000 jobs for
`all`, whose work grows with the jobs; as they are for the others, whose work should not), and a last
line of JSON with every figure. Nothing is asserted.

Then the change markers (skipped with `--no-writes`): job writes/s of one account alone (WRITE_THREADS
writers), then of two accounts at once (as many writers each), as a ratio per account; and what one sync
of a running cache costs (documents read, latency) when 0, 10 and 100 accounts changed jobs since its
previous sync, against the sync with none changed.

    nice -n 10 .venv/bin/python bench/bench_job_cache.py                      # 1k, 10k, 100k: ~5 minutes
    nice -n 10 .venv/bin/python bench/bench_job_cache.py --sizes 1000,10000   # quicker
    nice -n 10 .venv/bin/python bench/bench_job_cache.py --sizes ''           # the change markers only

Before the change marker (one snapshot listener over every job, in every instance), the same bench
measured with 1k / 10k / 100k jobs: a cold start of 0.76 s / 7.9 s / not complete after 600 s, reading
every job; 10 MB / 97 MB held; a new job matched by the running cache after p50 0.9 s / 9.8 s
(docs/architecture.md, "Job cache", has the table).

The child runs (`--child`) are internal: the parent passes the emulator's address in the environment.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

ACCOUNTS = 10_000
BATCH = 500
WRITERS = 4
TEMPLATE = (
    '{"text": "%s %s %s: %s" % [event.data.subject_type, event.data.subject_id, event.data.verb, '
    'std.get(event.data, "notes", "")], "blocks": [{"type": "section", "text": {"type": "mrkdwn", '
    '"text": "*%s* in account %s" % [event.data.verb, event.data.aid]}}]}'
)
SUBJECT_TYPES = ("work", "workflow", "segment", "journey", "report", "stream", "schema", "user")
VERBS = ("created", "updated", "deleted", "started", "completed", "failed", "synced")
SECRET = "whsec_" + "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"  # 33 bytes of base64


def job_doc(i: int, rng: random.Random) -> tuple[str, str, dict]:
    """Job number i: (aid, id, stored document). A mix like a real tenant base: mostly webhooks (some
    with a template, headers, a signing secret), email alerts and BigQuery exports."""
    aid = f"acct-{i % ACCOUNTS:05d}"
    config: dict = {"system_event_multiple_types": rng.sample(VERBS, rng.randint(1, 3))}
    shape = rng.random()
    if shape < 0.5:
        config["system_event_sources"] = {
            rng.choice(SUBJECT_TYPES): [f"id-{rng.randrange(10_000)}" for _ in range(rng.randint(1, 5))]
        }
    elif shape < 0.8:
        config["system_event_sources"] = {rng.choice(SUBJECT_TYPES): []}
    kind = rng.random()
    if kind < 0.7:
        workflow = "webhook_system_events"
        config["webhook_url"] = f"https://hooks.example.com/t/{aid}/{i}"
        if rng.random() < 0.4:
            config["json_template"] = TEMPLATE
        if rng.random() < 0.3:
            config["headers"] = {"X-Tenant": aid, "X-Route": f"route-{i % 97}"}
        if rng.random() < 0.5:
            config["signing_secrets"] = [SECRET]
    elif kind < 0.9:
        workflow = "email_system_events"
        config["recipients"] = [f"ops-{i}@example.com", "oncall@example.com"][: rng.randint(1, 2)]
        config["subject_template"] = '"%s %s" % [event.data.subject_type, event.data.verb]'
    else:
        workflow = "bigquery_system_events"
        config.update({"dataset": "exports", "table": f"events_{i % 1000}"})
        if rng.random() < 0.1:  # 1% of all jobs: an export that copies the audit log first
            config.update({"mode": "backfill_then_continuous", "start_time": "2026-01-01T00:00:00Z"})
    now = datetime.now(UTC)
    doc = {
        "id": f"job-{i}",
        "aid": aid,
        "workflow": workflow,
        "config": config,
        "state": "active" if rng.random() < 0.95 else "paused",
        "version": 1,
        "generation": f"{i:012x}",
        "name": f"job {i} of {aid}",
        "created_at": now,
        "updated_at": now,
        "disabled_reason": None,
        "disabled_at": None,
    }
    return aid, f"job-{i}", doc


def write_jobs(client, start: int, stop: int) -> float:
    """Store jobs start..stop-1 in batches of BATCH, WRITERS batches at a time; returns the seconds."""
    rng = random.Random(start)
    accounts = client.collection("accounts")
    batches = []
    for lo in range(start, stop, BATCH):
        batch = client.batch()
        for i in range(lo, min(stop, lo + BATCH)):
            aid, jid, doc = job_doc(i, rng)
            batch.set(accounts.document(aid).collection("jobs").document(jid), doc)
        batches.append(batch)
    started = time.perf_counter()
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda b: b.commit(timeout=120), batches))
    return time.perf_counter() - started


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- one cold start, in its own process ---------------------------------------------------------------------
EVENT_ACCOUNTS = 200
"""Accounts an ingest instance sees events of after its cold start (each loaded on its first event)."""
LOOKUPS = 1000
"""Jobs a sink instance looks up after its cold start (each read on its first delivery)."""
NEW_JOBS = 10
"""New jobs timed per run, from the write call until a running cache matches an event with them."""


def new_job(n: int):
    from sysevents.jobs.registry import job_from_dict

    return job_from_dict(
        {
            "workflow": "webhook_system_events",
            "config": {"system_event_type": "failed", "webhook_url": "https://hooks.example.com/new"},
        },
        job_id=f"new-{n}-{time.time_ns()}",
        aid="acct-new",
    )


def child(project: str, size: int, role: str) -> dict:
    """One cold start of a function instance's job cache, in this fresh process. Roles:
    `ingest` (a match for events of EVENT_ACCOUNTS accounts, then new jobs' propagation), `sink` (LOOKUPS
    lookups by (aid, id), as deliveries do), `all` (every job listed: the bigquery function's ticks)."""
    from google.cloud import firestore

    import sysevents.jobs.registry  # noqa: F401 - the workflow registry, as a function has it loaded
    from sysevents.events.model import new_event
    from sysevents.jobs.cache import JobCache
    from sysevents.jobs.store import JobStore

    client = firestore.Client(project=project)
    client.collection("bench").document("warm-up").get(timeout=60)  # the channel is not the cache's cost
    rng = random.Random(size)
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    cache = JobCache(JobStore(client), start_timeout=600, max_jobs=max(20_000, size)).start()
    out: dict = {"role": role, "start_s": time.perf_counter() - started, "start_reads": cache.documents_read}
    if role == "all":
        out["jobs"] = len(cache.jobs())
        out["ready_s"] = time.perf_counter() - started
    elif role == "ticks":
        out["jobs"] = len(cache.jobs(where=lambda j: j.config.has_backfill()))
        out["ready_s"] = time.perf_counter() - started
    elif role == "ingest":
        accounts = rng.sample(range(min(size, ACCOUNTS)), min(EVENT_ACCOUNTS, size, ACCOUNTS))
        t = time.perf_counter()
        for a in accounts:
            cache.match(new_event(f"acct-{a:05d}", "work", "w-1", "failed"))
        out["per_account_ms"] = (time.perf_counter() - t) * 1000 / len(accounts)
        out["accounts"] = len(accounts)
        out["jobs"] = len(cache)
        out["ready_s"] = time.perf_counter() - started
    else:
        picks = [rng.randrange(size) for _ in range(min(LOOKUPS, size))]
        t = time.perf_counter()
        for i in picks:
            cache.get(f"acct-{i % ACCOUNTS:05d}", f"job-{i}")
        out["per_lookup_ms"] = (time.perf_counter() - t) * 1000 / len(picks)
        out["lookups"] = len(picks)
        out["jobs"] = len(cache)
        out["ready_s"] = time.perf_counter() - started
    gc.collect()
    out["rss_mb"] = (rss_bytes() - before) / 2**20
    out["documents_read"] = cache.documents_read
    if role == "ingest":  # a new job reaching this running cache, as ingest matches (max_age: default)
        store = JobStore(client)
        event = new_event("acct-new", "work", "w-1", "failed")
        cache.match(event)  # the account is held before its new job is written
        lags = []
        for n in range(NEW_JOBS):
            job = new_job(n)
            t = time.perf_counter()
            store.put(job)
            while all(j.id != job.id for j in cache.match(event)):
                time.sleep(0.0005)
            lags.append((time.perf_counter() - t) * 1000)
            store.delete(job.aid, job.id)
        out["new_job_p50_ms"], out["new_job_max_ms"] = statistics.median(lags), max(lags)
        out["max_age_ms"] = cache.max_age * 1000
    cache.stop()
    return out


def run_child(env: dict[str, str], project: str, size: int, role: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--project", project, "--size", str(size), "--role", role],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"cold start child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the run ---------------------------------------------------------------------------------------------------
ROLES = ("ingest", "sink", "ticks", "all")


WRITE_THREADS = 1
"""Writers per account: one, so that what slows an account's writes is the other account, not its own."""
WRITE_SECONDS = 3.0
WRITE_ROUNDS = 3
CHANGED_ACCOUNTS = (0, 10, 100)
SYNCS = 20


def write_rate(store, accounts: list[str], seconds: float) -> tuple[dict[str, float], int]:
    """(job writes/s of each account, writes that failed after every transaction attempt): WRITE_THREADS
    writers per account, all at once for `seconds`."""
    counts = dict.fromkeys(accounts, 0)
    failed = [0]
    stop = time.perf_counter() + seconds

    def writer(aid: str, w: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            try:
                store.put(new_job(n).model_copy(update={"aid": aid, "id": f"w{w}-{n % 20}"}))
                n += 1
            except ValueError:  # "Failed to commit transaction in 50 attempts": contention
                failed[0] += 1
        counts[aid] += n

    with ThreadPoolExecutor(WRITE_THREADS * len(accounts)) as pool:
        list(pool.map(lambda a: writer(*a), [(a, w) for a in accounts for w in range(WRITE_THREADS)]))
    return {a: counts[a] / seconds for a in accounts}, failed[0]


def markers(client) -> dict:
    """Job writes/s of one account vs two at once, and a sync's cost with 0, 10, 100 accounts changed."""
    from sysevents.jobs.cache import JobCache
    from sysevents.jobs.store import JobStore

    store = JobStore(client)
    write_rate(store, ["warm"], 1.0)
    runs_alone, runs_both, failed = [], [], {"alone": 0, "two_accounts": 0}
    for _ in range(WRITE_ROUNDS):  # alternated, so that the machine's other load falls on both alike
        rate, n = write_rate(store, ["acct-w1"], WRITE_SECONDS)
        runs_alone.append(rate["acct-w1"])
        failed["alone"] += n
        rate, n = write_rate(store, ["acct-w1", "acct-w2"], WRITE_SECONDS)
        runs_both.append(rate)
        failed["two_accounts"] += n
    alone = statistics.median(runs_alone)
    both = {a: statistics.median(r[a] for r in runs_both) for a in ("acct-w1", "acct-w2")}
    out: dict = {"writes_alone_per_s": alone, "writes_two_accounts_per_s": both, "writes_failed": failed}
    out["per_account_ratio"] = min(both.values()) / alone
    cache = JobCache(JobStore(client), max_age=0).start()
    time.sleep(getattr(cache, "margin", 0) + 0.1)  # the writes above out of every sync's window
    syncs = []
    for changed in CHANGED_ACCOUNTS:
        reads, took = [], []
        for _ in range(SYNCS):
            for a in range(changed):
                store.put(new_job(a).model_copy(update={"aid": f"acct-s{a}", "id": "j"}))
            before, t = cache.documents_read, time.perf_counter()
            cache.sync()
            took.append((time.perf_counter() - t) * 1000)
            reads.append(cache.documents_read - before)
        syncs.append({"changed": changed, "reads": statistics.median(reads), "ms": statistics.median(took)})
    out["syncs"] = syncs
    return out


def report_markers(m: dict) -> None:
    print(
        f"\nJob writes/s, {WRITE_THREADS} writer(s) per account, median of {WRITE_ROUNDS} runs of "
        f"{WRITE_SECONDS:.0f} s each:"
    )
    print(f"  one account alone:     {m['writes_alone_per_s']:8.1f}/s")
    for aid, rate in m["writes_two_accounts_per_s"].items():
        print(f"  {aid} beside another: {rate:8.1f}/s")
    print(f"  per account, two at once / alone: {m['per_account_ratio']:.2f}")
    print(f"  writes failed after every attempt: {m['writes_failed']}")
    base = m["syncs"][0]
    print(
        f"\nOne sync of a running cache (median of {SYNCS}), by accounts that changed jobs since the one before:"
    )
    print(f"{'changed':>8} {'reads':>6} {'ms':>7} {'reads/base':>11} {'ms/base':>8}")
    for r in m["syncs"]:
        print(
            f"{r['changed']:>8} {r['reads']:>6.0f} {r['ms']:>7.1f} {r['reads'] / base['reads']:>11.1f} "
            f"{r['ms'] / base['ms']:>8.2f}"
        )


def main(sizes: list[int], writes: bool) -> None:
    from sysevents.local.stack import LocalStack

    with LocalStack(bigquery=False, functions=()) as stack, stack.environment():
        from google.cloud import firestore

        client = firestore.Client(project=stack.project)
        rows, stored, found = [], 0, {}
        if writes:
            found = markers(client)
            report_markers(found)
        for size in sizes:
            write_s = write_jobs(client, stored, size)
            print(
                f"stored {size - stored:,} more jobs in {write_s:.1f} s ({(size - stored) / write_s:,.0f}/s)"
            )
            stored = size
            for role in ROLES:
                row = {"size": size, **run_child(stack.env, stack.project, size, role)}
                rows.append(row)
                print(
                    f"  {role:>6} cold start, {size:,} jobs stored: {row['ready_s']:.2f} s, "
                    f"{row['documents_read']:,} reads, {row['rss_mb']:.0f} MB",
                    flush=True,
                )
        if rows:
            report(rows)
        print(json.dumps({"bench": "job_cache", "runs": rows, "markers": found}))


def report(rows: list[dict]) -> None:
    print("\nJob cache cold start per role (a fresh process each):")
    print("  ingest: start, then a first event of each of 200 accounts (each account's jobs loaded once)")
    print("  sink:   start, then 1,000 lookups by (aid, id) of stored jobs (each read once)")
    print("  ticks:  start, then the jobs with a backfill listed (the bigquery function's ticks)")
    print("  all:    start, then every job listed and kept (what a cache of every job holds)")
    print(
        f"{'jobs':>8} {'role':>7} {'start s':>8} {'done s':>8} {'reads':>8} {'held':>7} {'RSS MB':>7} "
        f"{'per item':>11} {'new job p50':>12} {'max':>7}"
    )
    for r in rows:
        per = r.get("per_account_ms", r.get("per_lookup_ms"))
        per_s = f"{per:.2f} ms" if per is not None else "-"
        new = f"{r['new_job_p50_ms']:.0f} ms" if "new_job_p50_ms" in r else "-"
        mx = f"{r['new_job_max_ms']:.0f} ms" if "new_job_max_ms" in r else "-"
        print(
            f"{r['size']:>8,} {r['role']:>7} {r['start_s']:>8.3f} {r['ready_s']:>8.2f} {r['documents_read']:>8,} "
            f"{r['jobs']:>7,} {r['rss_mb']:>7.1f} {per_s:>11} {new:>12} {mx:>7}"
        )
    base_size = rows[0]["size"]
    print(
        f"\nRelative to the {base_size:,}-job run (per 1,000 jobs stored for 'ticks' and 'all'; as is for the others):"
    )
    print(f"{'jobs':>8} {'role':>7} {'time':>7} {'reads':>7} {'RSS':>7}")
    base = {r["role"]: r for r in rows if r["size"] == base_size}
    for r in rows:
        b = base[r["role"]]
        k = (r["size"] / b["size"]) if r["role"] in ("all", "ticks") else 1.0
        t = (r["ready_s"] / k) / b["ready_s"]
        n = (r["documents_read"] / k) / b["documents_read"]
        m = (r["rss_mb"] / k) / b["rss_mb"] if b["rss_mb"] > 0 else float("nan")
        print(f"{r['size']:>8,} {r['role']:>7} {t:>7.2f} {n:>7.2f} {m:>7.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated job counts, ascending")
    ap.add_argument("--no-writes", action="store_true", help="skip the change markers' figures")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--project", default="sysevents-local", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--role", choices=ROLES, default="ingest", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.project, args.size, args.role)))
    else:
        main([int(s) for s in args.sizes.split(",") if s], not args.no_writes)
