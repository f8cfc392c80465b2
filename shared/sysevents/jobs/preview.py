"""What a job's filter would have selected from past events: the evaluation step of a preview.

`preview(filter, events)` takes events in time order (oldest first) and applies the same `matches` live
matching uses, so what it counts is what ingest would have delivered. Reading the events (a bounded scan
of the audit log) is the caller's; a condition (threshold, absence) can run over the same ordered stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sysevents.events.model import SystemEvent
from sysevents.jobs.matching import matches
from sysevents.jobs.model import EventFilter

DEFAULT_SAMPLE = 10


@dataclass
class Preview:
    scanned: int = 0
    matched: int = 0
    sample: list[SystemEvent] = field(default_factory=list)
    """The first matching events (oldest first), at most the sample size asked for."""
    first: datetime | None = None
    last: datetime | None = None
    """When the first and the last matching event happened."""


def preview(f: EventFilter, events: Iterable[SystemEvent], sample: int = DEFAULT_SAMPLE) -> Preview:
    """Count and sample the events (in time order) that `f` selects."""
    out = Preview()
    for event in events:
        out.scanned += 1
        if not matches(f, event):
            continue
        out.matched += 1
        out.first = out.first or event.time
        out.last = event.time
        if len(out.sample) < sample:
            out.sample.append(event)
    return out
