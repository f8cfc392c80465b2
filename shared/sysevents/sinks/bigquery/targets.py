"""Which BigQuery tables an account's export jobs may write to: a deployment-level rule.

An export target must be in the deployment's project (or one of `SYSEVENTS_EXPORT_PROJECTS`), never the
audit dataset, and in one of the account's own datasets: `<prefix><account>` or
`<prefix><account>__<anything>` (prefix `SYSEVENTS_EXPORT_DATASET_PREFIX`, default `export_`). The
account id is written into the dataset name injectively ('_' -> '_u', '.' -> '_d', '-' -> '_h'; an encoded
id never contains '__'), so no account can name a dataset that another account's rule also allows.
Checked when a job is saved (the admin API) and again by the sink before every write, so a rule changed
by the operator applies to existing jobs at once.
"""

from __future__ import annotations

from sysevents.config import Settings

_ENCODE = {"_": "_u", ".": "_d", "-": "_h"}


def encode_aid(aid: str) -> str:
    return "".join(_ENCODE.get(c, c) for c in aid)


def account_dataset(settings: Settings, aid: str) -> str:
    """The dataset of account `aid` (its export tables go there or in `<it>__<suffix>` datasets)."""
    return settings.export_dataset_prefix + encode_aid(aid)


def refusal(settings: Settings, aid: str, project: str | None, dataset: str) -> tuple[str, str] | None:
    """(field, why) when account `aid` may not export to `project.dataset`; None when it may."""
    project = project or settings.project
    if project != settings.project and project not in settings.export_projects:
        return "config.project", f"exports may not write to project {project!r} (deployment setting)"
    if project == settings.project and dataset == settings.audit_dataset:
        return "config.dataset", "the audit dataset cannot be an export target"
    own = account_dataset(settings, aid)
    if dataset != own and not dataset.startswith(own + "__"):
        return "config.dataset", f"must be this account's dataset {own!r}, or one named {own}__<suffix>"
    return None
