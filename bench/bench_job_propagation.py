"""How long a job change takes until a running function's job cache reports it (its GET).

Starts the emulators and the ingest function, writes N job changes, and times each from Firestore's
write call to the moment the function reports a cache read time at or after that commit. The GET syncs
the cache first, so this is a write and a GET; without a GET, a cache is at most X old when it answers
(README "Job cache"; bench/bench_job_cache.py measures that).

    .venv/bin/python bench/bench_job_propagation.py
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from datetime import datetime

from sysevents.jobs import job_from_dict
from sysevents.local.stack import LocalStack

CHANGES = 30


def main() -> None:
    with LocalStack(bigquery=False, functions=("ingest",)) as stack, stack.environment():
        from google.cloud import firestore

        from sysevents.store import JobStore

        store = JobStore(firestore.Client(project=stack.project))
        url = stack.function_urls["ingest"]
        lags = []
        for i in range(CHANGES):
            job = job_from_dict(
                {
                    "workflow": "webhook_system_events",
                    "config": {
                        "system_event_type": "failed",
                        "webhook_url": f"https://hooks.example.com/{i}",
                    },
                },
                job_id="bench-job",
                aid="bench",
            )
            started = time.perf_counter()
            store.put(job)
            written = store.last_write_time
            while True:
                with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local function
                    read_time = json.loads(resp.read())["job_cache"]["read_time"]
                if read_time and datetime.fromisoformat(read_time) >= written:
                    break
                time.sleep(0.002)
            lags.append((time.perf_counter() - started) * 1000)
        lags.sort()
        print(f"job write call -> ingest function's cache has it, {CHANGES} changes (2 ms polling):")
        print(
            f"  p50 {statistics.median(lags):.0f} ms, p90 {lags[int(0.9 * len(lags)) - 1]:.0f} ms, "
            f"max {lags[-1]:.0f} ms"
        )


if __name__ == "__main__":
    main()
