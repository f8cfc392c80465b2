"""Delivery: the one envelope every push sink runs through, and what it keeps per job.

- `envelope`: parse the push, the delivery, the job, the state policy, the sink's `deliver`, then
  acknowledge, retry or dead-letter, with the accounting and one log line per outcome.
- `sink`: the `Sink` base class (one subclass per sink package) and the `Attempt` it is given.
- `outcome`: what `deliver` returns.
- `accounting`: per-job attempt log, counters that reconcile, dead letters, template versions.
- `attempts`: failed attempts per (job, event), to decide the last attempt.
- `replay`: publish a job's dead letters again.
"""
