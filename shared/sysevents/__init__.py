"""sysevents: capture a platform's system events (its audit log) and run export and alert jobs on them.

The rooms, from the bottom up (each imports only from rooms below it; tests/unit/test_layout.py holds it):
- `config` (the one Settings object), `topology` (topology.json: topics, subscriptions, sinks, functions);
- `events/`: the system event, strict JSON reading, producer identity; `jobs/`: the job model, the workflow
  registry, the job store, its change markers (one per account) and cache, matching, loop protection, work events, sealed secrets;
- `transport/`: Pub/Sub pushes and publishing, the delay queue, redrive, quarantine, group commit;
  `net/`: the destination guard; `obs/`: logs and traces, metering, `sysevents status`;
- `templates/`: Jsonnet in a sandbox; `auditlog/`: the BigQuery audit table;
- `runtime`: one function instance's clients and components;
- `delivery/`: the one envelope every push sink runs through, and what it keeps per job;
- `alerts/`: the alert engine every alerting channel runs; `backfill/`: copying a time range out of the
  audit log;
- `sinks/`: one package per sink (webhook, email, bigquery, audit);
- `ingest` and `entry`: the push functions' entry points; `admin/`: the admin API and console; `cli/`: the
  `sysevents` command; `local/`: the local stack of real emulators and functions.
"""

__version__ = "0.1.0"
