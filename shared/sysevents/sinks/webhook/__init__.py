"""The webhook sink: deliveries and alert notifications to any HTTP receiver (Slack, Teams, PagerDuty...).

- `config`, `headers`, `saving`: the job config, its header rules, what is checked and sealed on save;
- `sink`: delivery (templates, batching, auto-disable); `pacing`: holds and rate limits before a POST;
- `sender`: the guarded, signed HTTP POST; `channel`, `formats`: the alert channel and its default bodies;
- `versions`: the template each job version used; `autodisable`: pausing a job that keeps failing;
- `batch_export`: one-time exports of a time range of the audit log.
"""
