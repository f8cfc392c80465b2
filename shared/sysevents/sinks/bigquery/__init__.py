"""The BigQuery sink: export jobs' events into the account's own tables (`config`, `sink`), continuous or a
one-time or backfill-then-continuous range (`export`, `backfill`), into datasets it may write (`targets`)."""
