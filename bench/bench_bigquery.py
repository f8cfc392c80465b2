"""Streaming inserts into BigQuery (bqemulator): micro-batching vs one insertAll per event, same run.

Concurrent "requests" (threads, as a function instance's request threads) each store one event's row
and wait for its outcome, exactly as the audit and bigquery functions do. Prints rows per insertAll
and rows/s for both ways. Figures only; nothing is asserted.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

from google.auth.credentials import AnonymousCredentials  # noqa: E402
from google.cloud import bigquery  # noqa: E402

from sysevents.auditlog.schema import TableRef, row_of_event  # noqa: E402
from sysevents.auditlog.writer import TableWriter  # noqa: E402
from sysevents.events.model import new_event  # noqa: E402
from sysevents.local import emulators  # noqa: E402

PROJECT = "bench-local"
ROWS = 2000
CONCURRENCY = (8, 64, 256)  # 8: a local functions-framework instance's threads; 64, 256: gen2 concurrencies


def run(writer: TableWriter, ref: TableRef, batched: bool, concurrency: int) -> tuple[float, int, float]:
    events = [new_event("acct-bench", "work", f"w-{i}", "failed", notes="bench") for i in range(ROWS)]
    before = (writer.batcher.stats.calls, writer.batcher.stats.items)
    calls = 0

    def one(event):
        nonlocal calls
        [res] = writer.write(ref, [(event.id, row_of_event(event))], create_if_missing=True, batched=batched)
        assert res.stored
        if not batched:
            calls += 1  # one insertAll per row

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, events))
    elapsed = time.perf_counter() - started
    if batched:
        inserts = writer.batcher.stats.calls - before[0]
        rows = writer.batcher.stats.items - before[1]
    else:
        inserts, rows = calls, ROWS
    return rows / inserts, inserts, ROWS / elapsed


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-bq-"))
    proc, url = emulators.bigquery(workdir, PROJECT)
    try:
        proc.wait_ready(120)
        client = bigquery.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
        )
        writer = TableWriter(client, max_rows=500, max_wait=0.1, timeout=60)
        print(f"bqemulator, {ROWS} rows per run, micro-batching: up to 500 rows / 100 ms per insertAll")
        print(
            f"{'concurrency':>11}  {'way':<22} {'rows/insertAll':>14} {'insertAll calls':>15} {'rows/s':>8}"
        )
        figures: dict[str, dict[str, float]] = {}
        for concurrency in CONCURRENCY:
            for batched in (False, True):
                ref = TableRef(PROJECT, "bench", f"t_{uuid.uuid4().hex[:8]}")
                writer.table_schema(ref, create_if_missing=True)
                per, calls, rate = run(writer, ref, batched, concurrency)
                way = "micro-batched" if batched else "one insert per event"
                print(f"{concurrency:>11}  {way:<22} {per:>14.1f} {calls:>15} {rate:>8.0f}", flush=True)
                figures[f"{'batched' if batched else 'single'}_{concurrency}"] = {
                    "rows_per_insert": round(per, 1),
                    "rows_per_s": round(rate, 1),
                }
        print(
            "(rows per insertAll can never exceed the concurrent requests: each push carries one event and "
            "waits for its row)"
        )
        print(json.dumps({"bench": "bigquery", **figures}))
    finally:
        proc.stop()


if __name__ == "__main__":
    main()
