"""BigQuery: the audit table, streaming inserts with micro-batching, export backfills and audit search.

- `schema`: the one row shape (audit_schema.json), table creation, row validation.
- `writer`: streaming inserts (insertAll) micro-batched across concurrent requests, per-row outcomes.
- `export`: export jobs' streaming decision, backfills and the backfill-then-continuous hand-over.
- `search`: paginated audit-log search within one account.
"""
