"""The sinks: one package per sink, all the same shape.

Each package (`webhook`, `bigquery`, `email`, `audit`) holds its workflow's config model (`config.py`,
named by the workflow registry, sysevents.jobs.registry), its `Sink` subclass with `deliver` (`sink.py`,
run by the envelope in `sysevents.delivery`) and its own helpers.
"""
