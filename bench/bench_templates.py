"""Jsonnet renders/s with each binding available, single renders and a batch of 500 in one evaluation.

.venv/bin/python bench/bench_templates.py
"""

from __future__ import annotations

import importlib
import json
import time

from sysevents.local.demo import SLACK_TEMPLATE
from sysevents.templates import SAMPLE_EVENT, render

PRELUDE = "local event = std.extVar('event');\n"
BATCH = 500


def per_second(fn, min_seconds: float = 1.0) -> float:
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - started)


def bindings():
    for name, module in (
        ("rjsonnet (Rust)", "rjsonnet"),
        ("gojsonnet (Go)", "_gojsonnet"),
        ("jsonnet (C++)", "_jsonnet"),
    ):
        try:
            yield name, importlib.import_module(module).evaluate_snippet
        except ImportError:
            print(f"  {name}: not installed, skipped")


def main() -> None:
    event = json.dumps(SAMPLE_EVENT)
    events = json.dumps([SAMPLE_EVENT] * BATCH)
    batch_src = (
        "local tpl(event) = " + SLACK_TEMPLATE.replace("\n", " ") + ";\nstd.map(tpl, std.extVar('events'))"
    )
    print("Jsonnet, the seed's Slack template")
    print(f"{'binding':<18} {'single/s':>10} {'batch of 500 (s)':>17} {'renders/s in batch':>19}")
    for name, evaluate in bindings():
        single = per_second(lambda ev=evaluate: ev("t", PRELUDE + SLACK_TEMPLATE, ext_codes={"event": event}))
        started = time.perf_counter()
        out = evaluate("t", batch_src, ext_codes={"events": events})
        took = time.perf_counter() - started
        assert len(json.loads(out)) == BATCH
        print(f"{name:<18} {single:>10,.0f} {took:>17.3f} {BATCH / took:>19,.0f}")
    full = per_second(lambda: render(SLACK_TEMPLATE, SAMPLE_EVENT))
    print(f"sysevents.templates.render (sandboxed, rjsonnet): {full:,.0f}/s")


if __name__ == "__main__":
    main()
