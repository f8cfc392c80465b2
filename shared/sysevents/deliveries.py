"""The delivery message: one (event, job) pair, published by ingest to the job's sink topic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .events import InvalidEvent, SystemEvent, event_from_dict
from .jobs import Job


class BadDelivery(ValueError):
    pass


@dataclass(frozen=True)
class Delivery:
    event: SystemEvent
    job_id: str
    job_version: int

    def to_json(self) -> bytes:
        doc = {"event": self.event.to_cloudevent(), "job": {"id": self.job_id, "version": self.job_version}}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    def attributes(self) -> dict[str, str]:
        return {
            "job_id": self.job_id,
            "job_version": str(self.job_version),
            "event_id": self.event.id,
            "aid": self.event.aid,
        }

    @classmethod
    def of(cls, event: SystemEvent, job: Job) -> Delivery:
        return cls(event=event, job_id=job.id, job_version=job.version)

    @classmethod
    def from_json(cls, raw: bytes) -> Delivery:
        try:
            doc: Any = json.loads(raw)
            job = doc["job"]
            return cls(
                event=event_from_dict(doc["event"]), job_id=str(job["id"]), job_version=int(job["version"])
            )
        except (ValueError, KeyError, TypeError) as err:
            reason = err.reason if isinstance(err, InvalidEvent) else f"{type(err).__name__}: {err}"
            raise BadDelivery(f"malformed delivery message: {reason}") from None
