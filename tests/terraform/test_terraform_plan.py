"""`terraform plan` of the root module with each example tfvars, asserted on the plan (`terraform show -json`).

Real Terraform core plans against the google 6.50.0 and archive schemas (tfprovider.py): what Google
computes (ids, emails, URIs) is unknown, as in a real first plan; the Google project's number reads as
123456789012. Facts are taken from the plan and compared with topology.json and the code.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from tfhelpers import LIBRARY_DIR, TF_DIR, TOPOLOGY_FILE, plan_json, root_copy, strings

EXAMPLES = sorted((TF_DIR / "examples").glob("*.tfvars"))
PUBSUB_AGENT = "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, dict[str, Any]]:
    root = root_copy(tmp_path_factory.mktemp("plan"), stub_sources=True)
    return {example.stem: plan_json(root, example) for example in EXAMPLES}


@pytest.fixture(scope="module")
def topo() -> dict[str, Any]:
    return json.loads(TOPOLOGY_FILE.read_text())


def test_the_examples_are_production_and_staging():
    assert {e.stem for e in EXAMPLES} >= {"production", "staging"}


class Plan:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.changes = [c for c in doc["resource_changes"] if c["mode"] == "managed"]
        self.config = {
            r["address"]: r
            for r in doc["configuration"]["root_module"].get("resources", [])
            if r["mode"] == "managed"
        }

    def of(self, address: str) -> dict[Any, dict[str, Any]]:
        """The planned values of every instance of a resource ("type.name"), by index; unknowns as True."""
        return {
            c.get("index"): _merge(c["change"]["after"], c["change"]["after_unknown"])
            for c in self.changes
            if f"{c['type']}.{c['name']}" == address
        }

    def of_type(self, type_name: str) -> list[dict[str, Any]]:
        return [
            _merge(c["change"]["after"], c["change"]["after_unknown"])
            for c in self.changes
            if c["type"] == type_name
        ]

    def references(self, address: str, *path: str) -> list[str]:
        """What the configuration's expression at path (block names and the argument) refers to."""
        node: Any = self.config[address]["expressions"]
        for step in path:
            node = node[step][0] if isinstance(node[step], list) else node[step]
        return node.get("references", [])


def _merge(after: Any, unknown: Any) -> Any:
    """after with each unknown value (after_unknown true) as UNKNOWN."""
    if unknown is True:
        return UNKNOWN
    if isinstance(after, dict) and isinstance(unknown, dict):
        return {k: _merge(after.get(k), unknown.get(k, False)) for k in after.keys() | unknown.keys()}
    if isinstance(after, list) and isinstance(unknown, list):
        return [
            _merge(a, u) for a, u in zip(after, unknown + [False] * (len(after) - len(unknown)), strict=False)
        ]
    return after


UNKNOWN = "(known after apply)"


@pytest.fixture(scope="module", params=[e.stem for e in EXAMPLES])
def plan(request, plans) -> Plan:
    return Plan(plans[request.param])


def test_the_plan_creates_everything_and_applies(plan):
    assert plan.doc["applyable"] and plan.doc["complete"] and not plan.doc["errored"]
    assert {tuple(c["change"]["actions"]) for c in plan.changes} == {("create",)}


def test_every_check_block_passes_for_the_examples(plan):
    failing = [c["address"]["to_display"] for c in plan.doc.get("checks", []) if c["status"] != "pass"]
    assert failing == []


def test_every_push_subscription_has_oidc_a_dead_letter_policy_and_its_ack_deadline(plan, topo):
    declared = {s["name"]: s for s in topo["subscriptions"] if s.get("push_function")}
    planned = {k: v for k, v in plan.of("google_pubsub_subscription.push").items()}
    assert set(planned) == set(declared)
    for name, sub in planned.items():
        want = declared[name]
        assert sub["ack_deadline_seconds"] == want["ack_deadline_seconds"], name
        assert sub["message_retention_duration"] == f"{want['message_retention_seconds']}s", name
        (push,) = sub["push_config"]
        (oidc,) = push["oidc_token"]
        assert oidc["service_account_email"] == UNKNOWN and push["push_endpoint"] == UNKNOWN, name
        (dead,) = sub["dead_letter_policy"]
        assert dead["max_delivery_attempts"] == want["max_delivery_attempts"], name
        (retry,) = sub["retry_policy"]
        assert retry["minimum_backoff"] == f"{want['retry_policy']['minimum_backoff_seconds']}s", name
    address = "google_pubsub_subscription.push"
    assert "google_service_account.push.email" in plan.references(
        address, "push_config", "oidc_token", "service_account_email"
    )
    assert "google_pubsub_topic.topic" in plan.references(address, "dead_letter_policy", "dead_letter_topic")
    holds = plan.of("google_pubsub_subscription.hold")
    assert all(not h["push_config"] and not h["dead_letter_policy"] for h in holds.values())


def test_the_pubsub_service_agent_has_the_dead_letter_grants(plan, topo):
    push = [s for s in topo["subscriptions"] if s.get("push_function")]
    publishers = plan.of("google_pubsub_topic_iam_member.dead_letter_publisher").values()
    assert {(g["topic"], g["role"], g["member"]) for g in publishers} == {
        (s["dead_letter_topic"], "roles/pubsub.publisher", PUBSUB_AGENT) for s in push
    }
    subscribers = plan.of("google_pubsub_subscription_iam_member.dead_letter_subscriber").values()
    assert {(g["subscription"], g["role"], g["member"]) for g in subscribers} == {
        (s["name"], "roles/pubsub.subscriber", PUBSUB_AGENT) for s in push
    }
    (token,) = plan.of("google_service_account_iam_member.push_token_creator").values()
    assert (token["role"], token["member"]) == ("roles/iam.serviceAccountTokenCreator", PUBSUB_AGENT)


def test_each_function_runs_as_its_own_service_account(plan, topo):
    names = {f["name"] for f in topo["functions"]}
    functions = plan.of("google_cloudfunctions2_function.function")
    accounts = plan.of("google_service_account.function")
    assert set(functions) == set(accounts) == names
    assert len({a["account_id"] for a in accounts.values()}) == len(names)
    refs = plan.references(
        "google_cloudfunctions2_function.function", "service_config", "service_account_email"
    )
    assert refs == ["google_service_account.function", "each.key"]
    other = {a["account_id"] for a in plan.of_type("google_service_account")} - {
        a["account_id"] for a in accounts.values()
    }
    assert len(other) == len(plan.of_type("google_service_account")) - len(
        names
    )  # push, scheduler, build, releaser


def test_only_the_admin_api_accepts_traffic_from_outside(plan, topo):
    users = {f["name"] for f in topo["functions"] if f.get("invoked_by") == "users"}
    assert users == {"admin"}
    for name, f in plan.of("google_cloudfunctions2_function.function").items():
        (service,) = f["service_config"]
        assert service["ingress_settings"] == ("ALLOW_ALL" if name in users else "ALLOW_INTERNAL_ONLY"), name


def test_nobody_is_granted_to_all_users(plan):
    for c in plan.changes:
        for value in strings(c["change"]["after"]):
            assert value not in ("allUsers", "allAuthenticatedUsers"), c["address"]


def _release_topics(topo: dict[str, Any]) -> set[str]:
    """Topics feeding a function that waits (topology.json), but not the ingest topic or a dead-letter topic."""
    dead = {s["dead_letter_topic"] for s in topo["subscriptions"] if s.get("dead_letter_topic")}
    dead |= {s["dead_letter_topic"] for s in topo["sinks"]}
    waiting = {f["name"] for f in topo["functions"] if f.get("waits")}
    return {
        s["topic"]
        for s in topo["subscriptions"]
        if s.get("push_function") in waiting and s["topic"] != topo["ingest_topic"] and s["topic"] not in dead
    }


def test_the_delay_queue_releaser_publishes_only_where_the_topology_says(plan, topo):
    grants = plan.of("google_pubsub_topic_iam_member.releaser_publishes")
    assert set(grants) == _release_topics(topo)
    assert {g["role"] for g in grants.values()} == {"roles/pubsub.publisher"}
    # Nothing else is granted to the releaser.
    releaser = [
        address
        for address in plan.config
        if any(r.startswith("google_service_account.releaser") for r in _member_refs(plan, address))
    ]
    assert releaser == ["google_pubsub_topic_iam_member.releaser_publishes"]


def _member_refs(plan: Plan, address: str) -> list[str]:
    return plan.config[address]["expressions"].get("member", {}).get("references", [])


def test_each_function_gets_the_project_roles_its_topology_entry_lists(plan, topo):
    granted = {(g["role"], k.split(" ")[0]) for k, g in plan.of("google_project_iam_member.function").items()}
    assert granted == {(r, f["name"]) for f in topo["functions"] for r in f.get("project_roles", [])}


# -- drift guard: what the code reads and calls, against what the plan provides ------------------------------------
_ENV_NAME = re.compile(r"""os\.environ(?:\.get)?[\(\[]\s*["']([A-Z][A-Z0-9_]+)["']""")
_CONSTANT = re.compile(r"""^([A-Z][A-Z0-9_]*_ENV)\s*=\s*["']([A-Z][A-Z0-9_]+)["']""", re.MULTILINE)
# Variables the platform reads, not our code: functions-framework / gunicorn threads, Cloud Logging.
PLATFORM_ENV = {"THREADS", "LOG_EXECUTION_ID"}


def _settings_env() -> dict[str, Any]:
    """Every environment variable sysevents.config.Settings reads, with its field."""
    from sysevents.config import Settings

    found = {}
    prefix = Settings.model_config["env_prefix"]
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None) or [f"{prefix}{name}".upper()]
        for alias in aliases:
            found[alias] = field
    return found


def _code_env() -> set[str]:
    """Environment variables read by the library outside Settings (os.environ, *_ENV constants)."""
    names: set[str] = set()
    for path in LIBRARY_DIR.rglob("*.py"):
        if "local" in path.relative_to(LIBRARY_DIR).parts:
            continue  # the local stack's own plumbing
        text = path.read_text()
        names |= set(_ENV_NAME.findall(text)) | {v for _, v in _CONSTANT.findall(text)}
    return names


def _function_env(plan: Plan) -> dict[str, set[str]]:
    return {
        name: set(f["service_config"][0]["environment_variables"])
        | {s["key"] for s in f["service_config"][0]["secret_environment_variables"]}
        for name, f in plan.of("google_cloudfunctions2_function.function").items()
    }


def test_every_env_var_the_plan_sets_is_one_the_code_reads(plan):
    reads = set(_settings_env()) | _code_env() | PLATFORM_ENV
    for name, env in _function_env(plan).items():
        assert env - reads == set(), f"{name}: set by Terraform, read by no code: {sorted(env - reads)}"


def test_every_env_var_terraform_must_set_is_in_the_plan(plan):
    """Settings whose description says Terraform sets them, and the project, are in every function's env."""
    settings = _settings_env()
    needed = {env for env, field in settings.items() if "Terraform sets it" in (field.description or "")}
    needed.add("SYSEVENTS_PROJECT")
    assert {"SYSEVENTS_DELAY_QUEUE", "SYSEVENTS_DELAY_SERVICE_ACCOUNT"} <= needed
    for name, env in _function_env(plan).items():
        assert needed <= env, f"{name}: the code needs {sorted(needed - env)} and Terraform does not set it"


# Client libraries and REST endpoints the code calls, and the API each needs enabled.
CLIENT_APIS = {
    "google.cloud.pubsub": "pubsub.googleapis.com",
    "google.cloud.firestore": "firestore.googleapis.com",
    "google.cloud.bigquery": "bigquery.googleapis.com",
    "google.cloud.tasks": "cloudtasks.googleapis.com",
    "google.cloud.secretmanager": "secretmanager.googleapis.com",
    "google.cloud.storage": "storage.googleapis.com",
    "google.cloud.logging": "logging.googleapis.com",
    "google.cloud.monitoring": "monitoring.googleapis.com",
}
_IMPORT = re.compile(r"^\s*(?:from|import)\s+(google\.cloud\.[a-z_0-9]+)", re.MULTILINE)
_IMPORT_FROM = re.compile(r"^\s*from\s+google\.cloud\s+import\s+([a-z_0-9, ]+)", re.MULTILINE)
_ENDPOINT = re.compile(r"https://([a-z]+)\.googleapis\.com")
# What each resource type deployed needs enabled (Cloud Functions gen2 builds with Cloud Build into
# Artifact Registry and runs on Cloud Run).
RESOURCE_APIS = {
    "google_cloudfunctions2_function": {
        "cloudfunctions.googleapis.com",
        "run.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
    },
    "google_pubsub_": {"pubsub.googleapis.com"},
    "google_firestore_": {"firestore.googleapis.com"},
    "google_bigquery_": {"bigquery.googleapis.com"},
    "google_cloud_tasks_": {"cloudtasks.googleapis.com"},
    "google_cloud_scheduler_": {"cloudscheduler.googleapis.com"},
    "google_secret_manager_": {"secretmanager.googleapis.com"},
    "google_storage_": {"storage.googleapis.com"},
    "google_logging_": {"logging.googleapis.com"},
    "google_monitoring_": {"monitoring.googleapis.com"},
    "google_service_account": {"iam.googleapis.com"},
    # Project IAM bindings are read and written through the Cloud Resource Manager API.
    "google_project_iam_": {"cloudresourcemanager.googleapis.com"},
}


def _code_apis() -> set[str]:
    apis: set[str] = set()
    for path in LIBRARY_DIR.rglob("*.py"):
        if "local" in path.relative_to(LIBRARY_DIR).parts:
            continue
        text = path.read_text()
        modules = _IMPORT.findall(text)
        modules += [
            f"google.cloud.{n.strip()}" for names in _IMPORT_FROM.findall(text) for n in names.split(",")
        ]
        for module in modules:
            prefix = next((p for p in CLIENT_APIS if module.startswith(p)), None)
            assert prefix, f"{path}: imports {module}: which API does it call? add it to CLIENT_APIS"
            apis.add(CLIENT_APIS[prefix])
        apis |= {
            f"{host}.googleapis.com" for host in _ENDPOINT.findall(text) if host not in ("www", "oauth2")
        }
    return apis


def test_every_api_the_code_or_the_deployment_uses_is_enabled(plan):
    enabled = set(plan.of("google_project_service.apis"))
    code = _code_apis()
    assert {
        "pubsub.googleapis.com",
        "firestore.googleapis.com",
        "bigquery.googleapis.com",
        "cloudtasks.googleapis.com",
    } <= code
    assert code - enabled == set(), f"the code calls APIs the plan does not enable: {sorted(code - enabled)}"
    types = {c["type"] for c in plan.changes}
    for prefix, apis in RESOURCE_APIS.items():
        if any(t.startswith(prefix) for t in types):
            assert apis <= enabled, f"{prefix}* deployed without {sorted(apis - enabled)}"
