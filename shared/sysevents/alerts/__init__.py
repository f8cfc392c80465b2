"""Alerts on every channel: one engine, noise control, state in Firestore, timers on the delay queue.

- `engine`: one event in, at most one notification out (silences, mute windows, resolution, grouping,
  digests, rate limits); `channel`: the interface each channel implements (webhook and email sinks);
- `store`, `flush`, `outbox`, `ids`: alert state (accepted events, groups, the notification outbox,
  firing alerts); `timing`: when a group is due; `policy`: the noise-control settings of a job;
- `digest`: what every channel's digest is made of; `presets`: ready-made alert jobs.
"""
