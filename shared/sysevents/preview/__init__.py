"""Jobs previewed against the account's audit log: what a job would have matched and sent (report), and
the alert engine's decisions replayed over past events (simulate)."""
