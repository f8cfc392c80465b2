"""Matching throughput with 10, 1,000 and 10,000 jobs: the index against a linear scan, same run.

.venv/bin/python bench/bench_matching.py
"""

from __future__ import annotations

import json
import random
import time

from sysevents.events.model import SUBJECT_TYPES, VERBS, new_event
from sysevents.jobs.matching import JobIndex, matches
from sysevents.jobs.model import job_from_dict


def make_jobs(n: int, rng: random.Random, accounts: int) -> list:
    jobs = []
    for i in range(n):
        shape = rng.random()
        config = {
            "system_event_multiple_types": rng.sample(VERBS, rng.randint(1, 3)),
            "webhook_url": "https://hooks.example.com/x",
        }
        if shape < 0.5:
            config["system_event_sources"] = {
                rng.choice(SUBJECT_TYPES): [f"s{rng.randint(0, 50)}" for _ in range(rng.randint(1, 5))]
            }
        elif shape < 0.8:
            config["system_event_sources"] = {rng.choice(SUBJECT_TYPES): []}
        jobs.append(
            job_from_dict(
                {"workflow": "webhook_system_events", "config": config},
                job_id=f"job-{i}",
                aid=str(rng.randrange(accounts)),
            )
        )
    return jobs


def make_events(n: int, rng: random.Random, accounts: int) -> list:
    return [
        new_event(
            str(rng.randrange(accounts)),
            rng.choice(SUBJECT_TYPES),
            f"s{rng.randint(0, 50)}",
            rng.choice(VERBS),
        )
        for _ in range(n)
    ]


def rate(fn, events, min_seconds: float = 0.5) -> float:
    done, started = 0, time.perf_counter()
    while True:
        for ev in events:
            fn(ev)
        done += len(events)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return done / elapsed


def run(title: str, accounts_for) -> dict:
    rng = random.Random(7)
    print(title)
    print(
        f"{'jobs':>7} {'accounts':>9} {'index ev/s':>12} {'scan ev/s':>12} {'index/scan':>11} {'matches/ev':>11}"
    )
    rates = {}
    for n in (10, 1_000, 10_000):
        accounts = accounts_for(n)
        jobs, events = make_jobs(n, rng, accounts), make_events(2000, rng, accounts)
        index = JobIndex(jobs)
        filters = [j.filter for j in jobs]
        found = sum(len(index.match(ev)) for ev in events) / len(events)
        idx = rate(index.match, events)
        scan = rate(lambda ev, fs=filters: [f for f in fs if matches(f, ev)], events[: max(50, 20000 // n)])
        rates[n] = idx
        print(f"{n:>7} {accounts:>9} {idx:>12,.0f} {scan:>12,.0f} {idx / scan:>10.1f}x {found:>11.2f}")
    print(
        f"  index ev/s ratio, 10,000 jobs : 1,000 jobs = {rates[10_000] / rates[1_000]:.2f}; "
        f"10,000 : 10 = {rates[10_000] / rates[10]:.2f}\n"
    )
    return {"index_per_s": {str(k): round(v) for k, v in rates.items()},
            "ratio_10k_1k": round(rates[10_000] / rates[1_000], 3)}  # fmt: skip


def main() -> None:
    print(
        "Matching: events/s (higher is better); the index against a linear scan of every filter, same run.\n"
    )
    a = run(
        "A. ~10 jobs per account (tenants grow with jobs; matches per event stay flat):",
        lambda n: max(1, n // 10),
    )
    b = run("B. one account holding every job (matches per event grow with jobs):", lambda n: 1)
    print(json.dumps({"bench": "matching", "per_account": a, "one_account": b}))


if __name__ == "__main__":
    main()
