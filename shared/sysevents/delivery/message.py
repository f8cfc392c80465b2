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

from sysevents.events.model import MAX_DEPTH, InvalidEvent, SystemEvent, event_from_dict
from sysevents.events.strictjson import InvalidJSON, json_type, loads
from sysevents.jobs.model import Job


class BadDelivery(ValueError):
    pass


def delivery_id(job_id: str, event_ids: list[str] | tuple[str, ...]) -> str:
    """Stable per (job, event), or per (job, set of events) for a batch: the `webhook-id` receivers see,
    and the key of a delivery's dead letter. Every retry and replay of a delivery carries the same id."""
    key = "\0".join([job_id, *sorted(event_ids)])
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


NOTICE_KINDS = ("timer",)
MAX_NOTICE_FIELD_CHARS = 200


@dataclass(frozen=True)
class Delivery:
    event: SystemEvent
    job_id: str
    job_version: int
    aid: str = ""  # the job's account ("" in messages of older writers: the event's account)
    generation: str = ""  # the job's generation when matched ("" : not checked)
    notice: dict[str, str] | None = None
    """Not an event to deliver but work for the job's sink about it (`{"kind": "timer", "id", "group"}`: an
    alert group's timer, sysevents.alerts); `event` is then the event that set it."""

    @property
    def job_aid(self) -> str:
        return self.aid or self.event.aid

    @property
    def id(self) -> str:
        if self.notice is not None:
            return self.notice["id"]
        return delivery_id(self.job_id, [self.event.id])

    @property
    def record_id(self) -> str:
        """What its accounting records are about: the event, or the notice."""
        return self.notice["id"] if self.notice is not None else self.event.id

    def to_json(self) -> bytes:
        job: dict[str, Any] = {"id": self.job_id, "version": self.job_version}
        if self.aid:
            job["aid"] = self.aid
        if self.generation:
            job["generation"] = self.generation
        doc: dict[str, Any] = {"event": self.event.to_cloudevent(), "job": job}
        if self.notice is not None:
            doc["notice"] = self.notice
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    def attributes(self) -> dict[str, str]:
        attrs = {
            "job_id": self.job_id,
            "job_version": str(self.job_version),
            "event_id": self.event.id,
            "aid": self.job_aid,
        }
        if self.notice is not None:
            attrs["notice"] = self.notice["kind"]
        return attrs

    @classmethod
    def of(cls, event: SystemEvent, job: Job) -> Delivery:
        return cls(
            event=event, job_id=job.id, job_version=job.version, aid=job.aid, generation=job.generation
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Delivery:
        """Read what to_json wrote; anything else raises BadDelivery with a one-line reason."""
        try:
            # The delivery wraps the event one level deeper.
            doc: Any = loads(raw, what="message", max_depth=MAX_DEPTH + 1)
            if not isinstance(doc, dict):
                raise InvalidEvent(f"must be a JSON object, got {json_type(doc)}")
            job = doc.get("job")
            if not isinstance(job, dict):
                raise InvalidEvent(f"job: must be a JSON object with id and version, got {json_type(job)}")
            job_id, version = job.get("id"), job.get("version")
            if isinstance(job_id, int) and not isinstance(job_id, bool):
                job_id = str(job_id)
            if not isinstance(job_id, str) or not job_id:
                got = "an empty string" if job_id == "" else json_type(job_id)
                raise InvalidEvent(f"job.id: must be a non-empty string, got {got}")
            if isinstance(version, str) and version.isascii() and version.isdigit() and len(version) < 20:
                version = int(version)
            if not isinstance(version, int) or isinstance(version, bool):
                raise InvalidEvent(f"job.version: must be an integer, got {json_type(version)}")
            aid, generation = job.get("aid") or "", job.get("generation") or ""
            if not isinstance(aid, str) or not isinstance(generation, str):
                raise InvalidEvent("job.aid and job.generation: must be strings")
            return cls(
                event=event_from_dict(doc.get("event")),
                job_id=job_id,
                job_version=version,
                aid=aid,
                generation=generation,
                notice=_notice(doc.get("notice")),
            )
        except InvalidJSON as err:  # an InvalidEvent too
            raise BadDelivery(f"malformed delivery message: {err.reason}") from None


def _notice(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("kind") not in NOTICE_KINDS:
        raise InvalidEvent(f"notice: must be an object with kind one of {', '.join(NOTICE_KINDS)}")
    if not all(isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_NOTICE_FIELD_CHARS
               for k, v in value.items()) or not value.get("id"):  # fmt: skip
        raise InvalidEvent(
            f"notice: needs an id; every field a string of at most {MAX_NOTICE_FIELD_CHARS} characters"
        )
    return dict(value)
