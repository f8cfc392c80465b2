"""The delivery message: one (event, job) pair, published by ingest to the job's sink topic.

Wire form: `{"event": <CloudEvents envelope>, "job": {"aid", "id", "version", "generation"}}`. The job is
named by account and id (ids are per account) and carries the version and generation ingest matched:
the sink refuses a delivery whose job belongs to another account, was re-created since (another
generation) or changed workflow (sysevents.delivery.envelope).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .events import InvalidEvent, SystemEvent, event_from_dict
from .jobs import Job


class BadDelivery(ValueError):
    pass


def delivery_id(job_id: str, event_ids: list[str] | tuple[str, ...]) -> str:
    """Stable per (job, event), or per (job, set of events) for a batch: the `webhook-id` receivers see,
    and the key of a delivery's dead letter. Every retry and replay of a delivery carries the same id."""
    key = "\0".join([job_id, *sorted(event_ids)])
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Delivery:
    event: SystemEvent
    job_id: str
    job_version: int
    aid: str = ""  # the job's account ("" in messages of older writers: the event's account)
    generation: str = ""  # the job's generation when matched ("" : not checked)

    @property
    def job_aid(self) -> str:
        return self.aid or self.event.aid

    @property
    def id(self) -> str:
        return delivery_id(self.job_id, [self.event.id])

    def to_json(self) -> bytes:
        job = {"aid": self.job_aid, "id": self.job_id, "version": self.job_version}
        if self.generation:
            job["generation"] = self.generation
        doc = {"event": self.event.to_cloudevent(), "job": job}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    def attributes(self) -> dict[str, str]:
        return {
            "job_id": self.job_id,
            "job_version": str(self.job_version),
            "event_id": self.event.id,
            "aid": self.job_aid,
        }

    @classmethod
    def of(cls, event: SystemEvent, job: Job) -> Delivery:
        return cls(
            event=event, job_id=job.id, job_version=job.version, aid=job.aid, generation=job.generation
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Delivery:
        try:
            doc: Any = json.loads(raw)
            job = doc["job"]
            version = job["version"]
            if isinstance(version, bool) or not isinstance(version, int):
                raise TypeError(f"job.version must be a number, got {version!r:.40}")
            return cls(
                event=event_from_dict(doc["event"]),
                job_id=str(job["id"]),
                job_version=version,
                aid=str(job.get("aid") or ""),
                generation=str(job.get("generation") or ""),
            )
        except (ValueError, KeyError, TypeError, RecursionError) as err:
            reason = err.reason if isinstance(err, InvalidEvent) else f"{type(err).__name__}: {err}"
            raise BadDelivery(f"malformed delivery message: {reason}") from None
