"""Least privilege, checked against what each function's code does.

Each function's code is the library packages it runs (FUNCTION_CODE below: its sink package, the
delivery envelope, ...; a test checks that each entry point imports from its own). The marks are the calls
through which that code reaches Firestore, BigQuery and Pub/Sub; a function whose code makes such a call
needs the grant, and a function granted something its code never does has one grant too many.
docs/deploy.md has the same facts as a table, which must agree with topology.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tfhelpers import FUNCTIONS_DIR, LIBRARY_DIR, REPO, TOPOLOGY_FILE

from sysevents import topology as topology_mod

ENVELOPE = [
    f"delivery/{m}.py"
    for m in (
        "envelope",
        "attempt",
        "sink",
        "outcome",
        "waits",
        "ledger",
        "accounting",
        "ordering",
        "ratelimit",
    )
]
"""What every push sink runs (sysevents.entry -> sysevents.delivery.envelope); replay is the admin's."""
JOB_SIDE = [f"delivery/{m}.py" for m in ("ledger", "accounting", "ordering", "ratelimit")]
"""The envelope's job side (sysevents.delivery.ledger): what it runs for deliveries to a job only."""
FUNCTION_CODE = {
    "ingest": ["ingest.py"],
    "webhook": ["sinks/webhook", "alerts", *ENVELOPE],
    "email": ["sinks/email", "alerts", *ENVELOPE],
    # The bigquery function also runs webhook batch exports (their backfills), through the webhook sink.
    "bigquery": ["sinks/bigquery", "backfill", "sinks/webhook", *ENVELOPE],
    # The audit sink is job-less: the envelope's job side (ledger, accounting, ordering) is never its.
    "audit": ["sinks/audit", *(p for p in ENVELOPE if p not in JOB_SIDE)],
    "admin": ["admin", "delivery/replay.py", "delivery/accounting.py", "auditlog/search.py"],
}
"""The library code each function runs (paths under shared/sysevents)."""

FIRESTORE_WRITES = [
    r"\.key_queues\.(?:admit|block|advance)\(",  # ordered jobs' per-subject queues
    r"\.limiter\.(?:reserve|push_back|accepted)\(",  # rate-limit slots, learned pace
    r"\.accounting\.(?:record|dead_letter|forget)\(",
    r"\.versions\.remember\(",  # webhook jobs' template versions
    r"\.streak\.(?:bump|reset)\(",  # webhook jobs' failure streak (auto-disable)
    r"\.jobs\.(?:put|create|change|remove)\(",  # jobs
    r"\.alert_store\b",  # alert_* state
    r"\.runs\.(?:put|claim|checkpoint|release|park_unless_done|finish|forget)\(",  # exports/... runs
    r"\b(?:rt|call)\.keys\.(?:create_account|create_key|revoke_key)\(",  # accounts and API keys
    r"\.quarantine\.record\(",  # the quarantine's index
]
FIRESTORE_READS = FIRESTORE_WRITES + [
    r"\.cache\b",
    r"\.jobs\.(?:get|find|page)\(",
    r"\.accounting\.",
    r"\b(?:rt|call)\.keys\b",
]
BIGQUERY_JOBS = [
    r"\bwriter\.contains\(",
    r"\bsearch_audit\(",
    r"\.query\(",
]  # queries run as jobs in the project
AUDIT_READS = [r"\bsearch_audit\(", r"\baudit_table\(", r"\bAuditReader\("]  # backfills read the audit table
AUDIT_WRITES = [r"writer\.write\(\s*table\b"]  # the audit sink writes `table = audit_table(...)`
EXPORT_WRITES = [r"\btarget_of\("]  # user-chosen target tables (Terraform: var.bigquery_export_datasets)
PUBLISHES_INGEST = [r"topology\.ingest_topic", r"\bworkevents\.publish\(", r"\blifecycle\.publish\("]
PUBLISHES_SINK_TOPICS = [r"\breplay\("]  # replays dead-lettered deliveries to their job's sink topic
WAITS = [r"\.delays\.put\("]  # puts waits on the delay queue: enqueues release tasks
SECRETS = {  # environment variable (topology `secrets`) -> the calls that read it
    "SYSEVENTS_SEALING_KEYS": [r"\.sender\b", r"\bseal\(", r"\bunseal\(", r"\bparse_job\(", r"sealing_keys"],
    "SYSEVENTS_OPERATOR_KEY_HASH": [r"\b(?:rt|call)\.keys\b"],
    "SYSEVENTS_SMTP_PASSWORD": [r"\bMailer\("],
    "SYSEVENTS_PRODUCER_KEYS": [r"\bproducers\.refusal\("],  # the producer bindings events are admitted by
}

DATASTORE_WRITE = {"roles/datastore.user"}
DATASTORE_READ = {"roles/datastore.user", "roles/datastore.viewer"}
BIGQUERY_JOB = {"roles/bigquery.jobUser", "roles/bigquery.user"}


def code_of(function: str) -> str:
    """The source of the library code the function runs (FUNCTION_CODE)."""
    paths: list[Path] = []
    for entry in FUNCTION_CODE[function]:
        path = LIBRARY_DIR / entry
        found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        assert found and all(p.exists() for p in found), (function, entry)
        paths += found
    return "\n".join(p.read_text() for p in paths)


@pytest.mark.parametrize("name", sorted(FUNCTION_CODE))
def test_each_entry_point_runs_the_code_listed_for_it(name):
    main = (FUNCTIONS_DIR / name / "main.py").read_text()
    imported = [
        "/".join(filter(None, [(package or "").replace(".", "/"), item if not package else ""])) or item
        for package, item in re.findall(r"^from sysevents(?:\.([\w.]+))? import (\w+)$", main, re.M)
    ]
    own = [p for p in imported if p != "entry"]  # sysevents.entry: the shared entry point (the envelope)
    assert own, f"functions/{name}/main.py imports no handler of its own from sysevents"
    for path in own:
        assert any(path == e.removesuffix(".py") or path.startswith(e + "/") for e in FUNCTION_CODE[name]), (
            name,
            path,
        )


def test_every_function_has_its_code_listed():
    assert set(FUNCTION_CODE) == set(topology_mod.load().functions)


def uses(code: str, marks: list[str]) -> bool:
    return any(re.search(m, code) for m in marks)


TOPO = topology_mod.load()


@pytest.fixture(scope="module")
def defaults() -> list[str]:
    return ["roles/datastore.viewer"]


@pytest.mark.parametrize("name", sorted(TOPO.functions))
def test_firestore_roles_match_the_code(name, defaults):
    f, code = TOPO.functions[name], code_of(name)
    roles = set(f.project_roles if f.project_roles is not None else defaults)
    if uses(code, FIRESTORE_WRITES):
        assert roles & DATASTORE_WRITE, f"{name} writes to Firestore but has {sorted(roles)}"
    elif uses(code, FIRESTORE_READS):
        assert roles & DATASTORE_READ and not roles & DATASTORE_WRITE, (
            f"{name} only reads Firestore: roles/datastore.viewer, not {sorted(roles)}"
        )
    else:
        assert not roles & DATASTORE_READ, f"{name} does not use Firestore but has {sorted(roles)}"


@pytest.mark.parametrize("name", sorted(TOPO.functions))
def test_bigquery_roles_match_the_code(name, defaults):
    f, code = TOPO.functions[name], code_of(name)
    roles = set(f.project_roles if f.project_roles is not None else defaults)
    dataset = set(f.dataset_roles)
    queries = uses(code, BIGQUERY_JOBS)
    assert bool(roles & BIGQUERY_JOB) == queries, (
        f"{name}: {'runs' if queries else 'runs no'} BigQuery queries; project roles {sorted(roles)}"
    )
    if uses(code, AUDIT_WRITES):
        assert dataset == {"roles/bigquery.dataEditor"}, (name, dataset)
    elif uses(code, AUDIT_READS):
        assert dataset == {"roles/bigquery.dataViewer"}, (name, dataset)
    else:
        assert not dataset, f"{name} never touches the sysevents dataset but has {sorted(dataset)}"
    if uses(code, EXPORT_WRITES):
        # Creates datasets for create_if_missing (and owns those); existing targets get dataEditor
        # from var.bigquery_export_datasets (iam.tf).
        assert "roles/bigquery.user" in roles, (name, roles)
    else:
        assert "roles/bigquery.user" not in roles, (name, roles)


@pytest.mark.parametrize("name", sorted(TOPO.functions))
def test_declared_publishes_match_the_code(name):
    f, code = TOPO.functions[name], code_of(name)
    expected = set()
    if uses(code, PUBLISHES_INGEST):
        expected.add(TOPO.ingest_topic)
    if uses(code, PUBLISHES_SINK_TOPICS):
        expected.update(sink.topic for sink in TOPO.sinks.values())
    assert set(f.publishes) == expected, name


@pytest.mark.parametrize("name", sorted(TOPO.functions))
def test_functions_that_wait_say_so(name):
    """`waits` in topology.json (Terraform grants the delay queue's enqueuer role and the releaser) is
    exactly the functions whose code puts waits on the delay queue."""
    assert TOPO.functions[name].waits == uses(code_of(name), WAITS), name


@pytest.mark.parametrize("name", sorted(TOPO.functions))
def test_mounted_secrets_match_the_code(name):
    f, code = TOPO.functions[name], code_of(name)
    assert set(f.secrets) == {env for env, marks in SECRETS.items() if uses(code, marks)}, name


def test_the_marks_see_the_known_needs():
    """The marks are not vacuous: the calls they stand for are in the code they should be in."""
    assert uses(code_of("webhook"), FIRESTORE_WRITES) and uses(code_of("webhook"), PUBLISHES_INGEST)
    assert uses(code_of("audit"), BIGQUERY_JOBS) and not uses(code_of("audit"), FIRESTORE_READS)
    assert uses(code_of("bigquery"), EXPORT_WRITES) and uses(code_of("bigquery"), FIRESTORE_WRITES)
    assert uses(code_of("admin"), AUDIT_READS) and uses(code_of("admin"), PUBLISHES_SINK_TOPICS)
    assert uses(code_of("ingest"), FIRESTORE_READS) and uses(code_of("ingest"), FIRESTORE_WRITES)
    assert uses(code_of("email"), FIRESTORE_WRITES)


def test_deploy_doc_table_agrees_with_topology():
    """docs/deploy.md lists each function's grants; the table is the topology's, not a copy that drifts."""
    doc = (REPO / "docs" / "deploy.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 4:
            rows[cells[0].strip("`")] = cells
    raw = {f["name"]: f for f in json.loads(TOPOLOGY_FILE.read_text())["functions"]}
    assert set(rows) == set(raw)
    for name, (_, project, dataset, publishes, *_) in rows.items():
        f = TOPO.functions[name]
        proj = f.project_roles if f.project_roles is not None else ["roles/datastore.viewer"]
        assert set(re.findall(r"roles/[\w.]+", project)) == set(proj), name
        assert set(re.findall(r"roles/[\w.]+", dataset)) == set(f.dataset_roles), name
        assert set(re.findall(r"`([\w-]+)`", publishes)) >= set(f.publishes), name
