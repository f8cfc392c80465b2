"""Backfills: copy a job's events of a time range out of the audit table (engine), its run state (runs) and scheduled ticks."""
