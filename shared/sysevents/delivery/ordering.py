"""Ordered jobs: a subject's deliveries reach the receiver in order, even while one of them waits to retry.

Pub/Sub's ordering key (`<job key>/<subject id>`) brings a key's deliveries to the sink one at a time,
in publish order. A delivery that fails is acknowledged like any other (its retry waits in the delay
queue), so the key must not move on without it: the failed delivery becomes the key's *head* and blocks it.
While a key is blocked, its next deliveries are parked in order in Firestore
(`job_state/{job key}/keys/{key hash}` and its `items/{seq}`), acknowledged and counted as waiting. When the
head ends (delivered, dead-lettered, or filtered), the first parked delivery is published again as the
new head (attribute `head`), and so on until nothing is parked: then the key is free. Keys of other
subjects, jobs and accounts never wait for each other.

Cost: one Firestore read per delivery of an ordered job (is its key blocked?); parking, blocking and
releasing are transactions on the key's document, only when deliveries fail.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from google.cloud import firestore

from sysevents.delivery.sink import ATTEMPT_ATTR, HEAD_ATTR, SETTLE_ATTR, SLOT_ATTR, WAITED_ATTR, unparked_key
from sysevents.jobs.model import Job

if TYPE_CHECKING:
    from sysevents.transport.pubsub import Publisher, PushMessage

__all__ = ["FREE", "HEAD", "HEAD_ATTR", "PARKED", "KeyQueues"]

FREE, HEAD, PARKED = "free", "head", "parked"
"""What `admit` found: the key free; the key blocked by this delivery itself; parked behind the head."""


class KeyQueues:
    def __init__(self, client: firestore.Client, publisher: Publisher, collection: str = "job_state"):
        self.client = client
        self.publisher = publisher
        self.collection = client.collection(collection)

    def _ref(self, job: Job, key: str):
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.collection.document(job.key).collection("keys").document(digest)

    def admit(self, job: Job, key: str, msg: PushMessage, delivery_id: str) -> str:
        """FREE: the key is free, deliver it now. HEAD: the key is blocked by this very delivery (a
        redelivery of its head, say after its retry could not be put away): it goes ahead, as the head.
        PARKED: the key is blocked; the message was parked behind the head and will be published again, in
        order, when its turn comes."""
        ref = self._ref(job, key)
        snap = ref.get()
        if not snap.exists:  # the usual case: one read
            return FREE
        if (snap.to_dict() or {}).get("head") == delivery_id:
            return HEAD

        @firestore.transactional
        def park(tx: firestore.Transaction) -> str:
            snap = ref.get(transaction=tx)
            if not snap.exists:
                return FREE
            doc = snap.to_dict() or {}
            if doc.get("head") == delivery_id:
                return HEAD
            seq = int(doc.get("next", 0))
            tx.set(
                ref.collection("items").document(f"{seq:012d}"),
                {"data": msg.data, "attributes": msg.attributes, "delivery_id": delivery_id},
            )
            tx.update(ref, {"next": seq + 1})
            return PARKED

        return park(self.client.transaction())

    def block(self, job: Job, key: str, delivery_id: str) -> None:
        """The key's head failed: the key waits for its retries."""
        ref = self._ref(job, key)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> None:
            snap = ref.get(transaction=tx)
            if snap.exists:
                tx.update(ref, {"head": delivery_id})
            else:
                tx.set(ref, {"head": delivery_id, "first": 0, "next": 0, "key": key})

        run(self.client.transaction())

    def advance(self, job: Job, key: str, topic: str, ended: str) -> bool:
        """The key's head (delivery `ended`) ended: publish the first parked delivery as the new head, or free
        the key. Only the key's head moves it on: a repeat of an earlier head's ending (a redelivered
        message) changes nothing. Returns True when one was released."""
        ref = self._ref(job, key)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> bool:
            snap = ref.get(transaction=tx)
            if not snap.exists:
                return False
            doc = snap.to_dict() or {}
            if doc.get("head") not in (None, ended):  # another delivery is the head now
                return False
            first, nxt = int(doc.get("first", 0)), int(doc.get("next", 0))
            if first >= nxt:
                tx.delete(ref)
                return False
            item_ref = ref.collection("items").document(f"{first:012d}")
            item = item_ref.get(transaction=tx).to_dict() or {}
            attrs = {
                k: v for k, v in (item.get("attributes") or {}).items() if k not in (ATTEMPT_ATTR, SLOT_ATTR)
            }
            attrs.update({HEAD_ATTR: "1", WAITED_ATTR: "1"})
            if attrs.get(SETTLE_ATTR):  # settled once already (parked): its release is a settling of its own
                attrs[SETTLE_ATTR] = unparked_key(attrs[SETTLE_ATTR])
            # Published before the commit: a retried transaction may publish it twice (same delivery id).
            self.publisher.publish_all([(topic, bytes(item.get("data") or b""), attrs, key)])
            tx.delete(item_ref)
            tx.update(ref, {"first": first + 1, "head": item.get("delivery_id")})
            return True

        return run(self.client.transaction())
