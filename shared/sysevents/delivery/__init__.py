"""Delivery: the one envelope every push sink runs through, and what it keeps per job.

- `envelope`: parse the push, read the delivery, call the sink, then settle: decide, put away a retry or
  wait, record, hand over (dead letter, the ordering key's next, one log line); `ledger`: its job side
  (state policy, job lookup, ordered keys, accounting, the job's dead-letter list);
- `sink`: the `Sink` base class (one subclass per sink package); `attempt`: the attempt a message carries;
  `message`: the delivery message ingest publishes; `outcome`: what a sink's `deliver` returns and how the
  envelope settled it;
- `waits`: the retry schedule and the receiver's Retry-After; `ratelimit`: rate-limit slots across
  instances; `ordering`: ordered jobs' per-subject queues;
- `accounting`: per-job attempt log, counters that reconcile, dead letters; `recorder`: what Pub/Sub itself
  dead-lettered joins the job's list; `replay`: publish a job's dead letters again.
"""
