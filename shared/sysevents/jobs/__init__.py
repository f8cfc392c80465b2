"""Jobs ("works"): what a job is and where jobs live.

- `model`: the job, the filter every workflow shares, save-time hooks; `registry`: each workflow's config
  model (one per sink), reading and writing stored jobs;
- `store`: jobs in Firestore (`accounts/{aid}/jobs/{id}`), versioned writes; `changes`: the change markers
  (one per account) every write bumps; `cache`: the in-memory job cache functions match against, never older than its bound;
- `matching`: which jobs want an event; `origin`: loop protection for events sysevents emits itself;
  `workevents`: the `work` events about jobs; `secrets`: sealing job secrets at rest.
"""
