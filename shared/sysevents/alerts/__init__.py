"""Email alerts with noise control (grouping, digests, rate limits, silences, mute windows), and presets.

This package must not import `sysevents.jobs.model` at module level: jobs.py imports the policy models from here.
"""
