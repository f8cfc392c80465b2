"""The sinks: one package per sink, all the same shape.

Each package (`webhook`, `bigquery`, `email`, `audit`) holds its workflow's config model (`config.py`,
registered with `sysevents.jobs.model.register` when imported), its `Sink` subclass with `deliver`
(`sink.py`, run by the envelope in `sysevents.delivery`) and its own helpers. Importing this package
imports only the config modules, which are light: every function's job cache needs them to read jobs.
"""

from sysevents.sinks.bigquery import config as _bigquery_config  # noqa: F401 - registers bigquery_system_events
from sysevents.sinks.email import config as _email_config  # noqa: F401 - registers email_system_events
from sysevents.sinks.webhook import config as _webhook_config  # noqa: F401 - registers webhook_system_events

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
