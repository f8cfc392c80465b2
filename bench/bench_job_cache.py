"""The job cache at scale: 1k, 10k and 100k jobs over 10k accounts, against the real Firestore emulator.

For each size, a fresh Python process (as a new function instance) starts a job cache and reports:
the time until it is complete, the job documents it read from Firestore, the memory it holds (RSS delta
after a garbage collection, so what the instance keeps, not a peak), and then how long a new job takes
to reach that running cache (the write call until the cache has it; p50 and max over a few writes).
The jobs are written once, cumulatively (1k, then 9k more, then 90k more), in batched writes of 500.

Printed: one table, the same figures per 1,000 jobs relative to the smallest size of the run (1.00 means
"grows linearly"), and a last line of JSON with every figure. Nothing is asserted.

    nice -n 10 .venv/bin/python bench/bench_job_cache.py               # 1k, 10k, 100k: about 5 minutes
    nice -n 10 .venv/bin/python bench/bench_job_cache.py --sizes 1000,10000   # quicker

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
        "hold_until": None,
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
def propagation_writes(size: int) -> int:
    """New jobs timed per run: fewer when each takes long (the listener's cost per change grows with
    the jobs it holds)."""
    return max(3, min(15, 15_000 // size))


def child(project: str, size: int) -> dict:
    from google.cloud import firestore

    import sysevents.sinks  # noqa: F401 - the workflow registry, as a function has it loaded
    from sysevents.events import new_event
    from sysevents.jobs import job_from_dict
    from sysevents.store import JobCache, JobStore

    client = firestore.Client(project=project)
    client.collection("bench").document("warm-up").get(timeout=60)  # the channel is not the cache's cost
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    cache = JobCache(client, start_timeout=600).start()
    ready = time.perf_counter() - started
    gc.collect()
    held = rss_bytes() - before
    jobs, reads = len(cache), cache.documents_read

    store = JobStore(client)
    event = new_event("acct-new", "work", "w-1", "failed")
    cache.match(event)  # the account is known to this instance before its new job is written
    lags = []
    for n in range(propagation_writes(size)):
        job = job_from_dict(
            {
                "workflow": "webhook_system_events",
                "config": {"system_event_type": "failed", "webhook_url": "https://hooks.example.com/new"},
            },
            job_id=f"new-{n}-{time.time_ns()}",
            aid="acct-new",
        )
        t = time.perf_counter()
        store.put(job)
        while all(j.id != job.id for j in cache.match(event)):  # as ingest would match an event
            time.sleep(0.0005)
        lags.append((time.perf_counter() - t) * 1000)
        store.delete(job.aid, job.id)
    cache.stop()
    return {
        "jobs": jobs,
        "ready_s": ready,
        "documents_read": reads,
        "rss_mb": held / 2**20,
        "new_job_p50_ms": statistics.median(lags),
        "new_job_max_ms": max(lags),
    }


def run_child(env: dict[str, str], project: str, size: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--project", project, "--size", str(size)],
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
def main(sizes: list[int]) -> None:
    from sysevents.local.stack import LocalStack

    with LocalStack(bigquery=False, functions=()) as stack, stack.environment():
        from google.cloud import firestore

        client = firestore.Client(project=stack.project)
        rows, stored = [], 0
        for size in sizes:
            write_s = write_jobs(client, stored, size)
            print(
                f"stored {size - stored:,} more jobs in {write_s:.1f} s ({(size - stored) / write_s:,.0f}/s)"
            )
            stored = size
            row = {"size": size, **run_child(stack.env, stack.project, size)}
            rows.append(row)
            print(
                f"  cold start with {size:,} jobs: {row['ready_s']:.2f} s, {row['documents_read']:,} reads, "
                f"{row['rss_mb']:.0f} MB",
                flush=True,
            )
        report(rows)


def report(rows: list[dict]) -> None:
    print("\nJob cache cold start (a fresh process per size) and a new job's propagation to it:")
    print(
        f"{'jobs':>8} {'ready s':>9} {'reads':>9} {'RSS MB':>8} {'KB/job':>7} {'new job p50':>12} {'max':>7}"
    )
    for r in rows:
        print(
            f"{r['size']:>8,} {r['ready_s']:>9.2f} {r['documents_read']:>9,} {r['rss_mb']:>8.1f} "
            f"{r['rss_mb'] * 1024 / r['size']:>7.2f} {r['new_job_p50_ms']:>9.1f} ms {r['new_job_max_ms']:>4.0f} ms"
        )
    base = rows[0]
    print(f"\nPer 1,000 jobs, relative to the {base['size']:,}-job run (1.00 = linear growth):")
    print(
        f"{'jobs':>8} {'ready s/1k':>11} {'ratio':>6} {'reads/1k':>9} {'ratio':>6} {'MB/1k':>7} {'ratio':>6}"
    )
    for r in rows:
        k, bk = r["size"] / 1000, base["size"] / 1000
        t, bt = r["ready_s"] / k, base["ready_s"] / bk
        n, bn = r["documents_read"] / k, base["documents_read"] / bk
        m, bm = r["rss_mb"] / k, base["rss_mb"] / bk
        print(f"{r['size']:>8,} {t:>11.3f} {t / bt:>6.2f} {n:>9.0f} {n / bn:>6.2f} {m:>7.2f} {m / bm:>6.2f}")
    print(json.dumps({"bench": "job_cache", "runs": rows}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated job counts, ascending")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--project", default="sysevents-local", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.project, args.size)))
    else:
        main([int(s) for s in args.sizes.split(",")])
