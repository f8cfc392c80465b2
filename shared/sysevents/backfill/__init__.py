"""Backfills: copying a job's events of a time range out of the audit table -- `engine` (a slice at a time,
resumable), `runs` (run state, leases, parked events), `ticks` (scheduled ticks, and running one to the end)."""
