"""The audit sink: every valid event into the BigQuery audit table (job-less: its messages are the events)."""
