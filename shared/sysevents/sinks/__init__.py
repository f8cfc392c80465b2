"""The sinks: one package per sink, all the same shape.

Each package (`webhook`, `bigquery`, `email`, `audit`) holds its workflow's config model (`config.py`,
named by the workflow registry, sysevents.jobs.registry), its `Sink` subclass with `deliver` (`sink.py`,
run by the envelope in `sysevents.delivery`) and its own helpers.
"""

_SINKS = {
    "webhook": ("sysevents.sinks.webhook.sink", "WebhookSink"),
    "bigquery": ("sysevents.sinks.bigquery.sink", "BigQuerySink"),
    "email": ("sysevents.sinks.email.sink", "EmailSink"),
    "audit": ("sysevents.sinks.audit.sink", "AuditSink"),
}


def sink_class(name: str):
    """The Sink subclass of a topology sink (imported on first use: sink modules are heavier than configs)."""
    import importlib

    module, cls = _SINKS[name]
    return getattr(importlib.import_module(module), cls)
