"""The audit log: every valid event, archived in one BigQuery table.

- `schema`: the one row shape (audit_schema.json), table creation, row validation;
- `writer`: streaming inserts (insertAll) micro-batched across concurrent requests, per-row outcomes (the
  export sink writes through it too);
- `reader`: reading an account's rows in order, a page at a time (backfills);
- `search`: paginated audit-log search within one account (the admin API's `/audit`).
"""
