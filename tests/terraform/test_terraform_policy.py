"""Policy checks on the Terraform source (python-hcl2): what `terraform validate` and a reviewer would
catch, checked offline. What gets deployed per topology entry is tested in test_terraform_topology.py."""

from __future__ import annotations

import json
import re

import pytest
from tfhelpers import (
    MODULE_DIR,
    PRIMITIVE_ROLE_RE,
    REPO,
    TF_DIR,
    TOPOLOGY_FILE,
    blocks,
    evaluate_locals,
    one,
    parse,
    root_blocks,
    strings,
    tf_files,
)

CONCERNS = [
    "versions.tf",
    "variables.tf",
    "main.tf",
    "pubsub.tf",
    "tasks.tf",
    "functions.tf",
    "bundle.tf",
    "iam.tf",
    "firestore.tf",
    "bigquery.tf",
    "secrets.tf",
    "scheduler.tf",
    "logging_metrics.tf",
    "monitoring.tf",
    "dashboard.tf",
    "outputs.tf",
]


@pytest.fixture(scope="module")
def resources():
    return blocks("resource")


def test_one_file_per_concern():
    assert sorted(p.name for p in TF_DIR.glob("*.tf")) == sorted(CONCERNS)


def test_every_tf_file_parses():
    for path in tf_files():
        parse(path)


def test_provider_versions_are_bounded_ranges():
    for path in (TF_DIR / "versions.tf", MODULE_DIR / "versions.tf"):
        tf = parse(path)["terraform"][0]
        assert re.fullmatch(r">= [\d.]+, < [\d.]+", tf["required_version"]), path
        for provider in tf.get("required_providers", [{}])[0].values():
            assert re.fullmatch(r">= [\d.]+, < [\d.]+", provider["version"]), provider


def test_every_variable_is_typed_and_described():
    for (name,), var in blocks("variable").items():
        assert var.get("type"), f"variable {name} has no type"
        assert len(var.get("description", "")) > 10, f"variable {name} has no description"


def test_variables_that_can_be_wrong_are_validated():
    unvalidated = {name for (name,), var in root_blocks("variable").items() if "validation" not in var}
    # Booleans and free-form maps cannot be wrong in a way a rule could catch.
    assert unvalidated <= {
        "create_firestore_database",
        "deletion_protection",
        "enable_apis",
        "schedule_paused",
        "secret_values",
        "metrics_per_job_labels",
    }, unvalidated


def test_every_output_is_described():
    for (name,), output in blocks("output").items():
        assert len(output.get("description", "")) > 10, f"output {name} has no description"


def test_terraform_reads_the_one_topology_definition():
    module_main = (MODULE_DIR / "main.tf").read_text()
    assert "jsondecode(file(var.topology_file))" in module_main
    call = root_blocks("module")[("topology",)]
    assert call["source"] == "./modules/topology"
    assert call["topology_file"] == "${path.module}/../shared/sysevents/topology.json"
    assert (TF_DIR / "../shared/sysevents/topology.json").resolve() == TOPOLOGY_FILE


@pytest.mark.parametrize(
    ("resource", "source"),
    [
        (("google_pubsub_topic", "topic"), "module.topology.topics"),
        (("google_pubsub_subscription", "push"), "module.topology.push_subscriptions"),
        (("google_pubsub_subscription", "hold"), "module.topology.hold_subscriptions"),
        (("google_cloudfunctions2_function", "function"), "local.functions"),
        (("google_service_account", "function"), "local.functions"),
        (("data.archive_file", "bundle"), "module.topology.bundles"),
        (("google_secret_manager_secret", "secret"), "module.topology.secrets"),
        (("google_cloud_scheduler_job", "schedule"), "module.topology.schedules"),
    ],
)
def test_topology_driven_resources_iterate_over_the_topology(resources, resource, source):
    kind, name = resource
    found = (
        blocks("data")[(kind.removeprefix("data."), name)]
        if kind.startswith("data.")
        else resources[resource]
    )
    assert found["for_each"] == "${" + source + "}"


def test_only_topology_driven_functions_subscriptions_and_topics(resources):
    """No hand-written function, topic or subscription that topology.json does not know about."""
    for kind in ("google_cloudfunctions2_function", "google_pubsub_topic", "google_pubsub_subscription"):
        for (k, name), res in resources.items():
            if k == kind:
                assert "for_each" in res, f"{kind}.{name} is not derived from topology.json"


def test_every_subscription_with_a_push_endpoint_has_dead_letter_retry_and_oidc(resources):
    pushes = {
        k: r for k, r in resources.items() if k[0] == "google_pubsub_subscription" and "push_config" in r
    }
    assert pushes
    for key, sub in pushes.items():
        dlp = one(sub, "dead_letter_policy")
        assert dlp["dead_letter_topic"] and dlp["max_delivery_attempts"], key
        retry = one(sub, "retry_policy")
        assert retry["minimum_backoff"] and retry["maximum_backoff"], key
        oidc = one(one(sub, "push_config"), "oidc_token")
        assert oidc["service_account_email"] == "${google_service_account.push.email}", key
        assert one(sub, "expiration_policy")["ttl"] == "", key


def test_pubsub_service_agent_can_dead_letter_and_sign_push_tokens(resources):
    agent = "${local.pubsub_agent}"
    main = parse(TF_DIR / "main.tf")["locals"][0]
    assert main["pubsub_agent"].endswith("@gcp-sa-pubsub.iam.gserviceaccount.com")
    publisher = resources[("google_pubsub_topic_iam_member", "dead_letter_publisher")]
    assert (publisher["role"], publisher["member"]) == ("roles/pubsub.publisher", agent)
    assert "s.dead_letter_topic" in publisher["for_each"] and "push_subscriptions" in publisher["for_each"]
    subscriber = resources[("google_pubsub_subscription_iam_member", "dead_letter_subscriber")]
    assert (subscriber["role"], subscriber["member"]) == ("roles/pubsub.subscriber", agent)
    assert subscriber["for_each"] == "${module.topology.push_subscriptions}"
    token = resources[("google_service_account_iam_member", "push_token_creator")]
    assert (token["role"], token["member"]) == ("roles/iam.serviceAccountTokenCreator", agent)
    assert token["service_account_id"] == "${google_service_account.push.name}"


def test_every_function_runs_as_its_own_service_account(resources):
    fn = resources[("google_cloudfunctions2_function", "function")]
    service = one(fn, "service_config")
    assert service["service_account_email"] == "${google_service_account.function[each.key].email}"
    sa = resources[("google_service_account", "function")]
    assert sa["account_id"] == "${local.account_ids[each.key]}"
    # Grants go to exactly one function's account, never to a shared one.
    for (kind, name), res in resources.items():
        member = res.get("member", "")
        if "google_service_account.function[" in member:
            assert member == "${google_service_account.function[each.value.function].member}", (kind, name)


def test_functions_are_http_fed_by_our_own_push_subscriptions(resources):
    fn = resources[("google_cloudfunctions2_function", "function")]
    assert "event_trigger" not in fn, (
        "an Eventarc trigger would own the subscription and its dead-letter policy"
    )
    push = one(resources[("google_pubsub_subscription", "push")], "push_config")
    assert push["push_endpoint"].startswith(
        "${google_cloudfunctions2_function.function[each.value.push_function]"
    )
    ingress = one(fn, "service_config")["ingress_settings"]
    assert '"ALLOW_INTERNAL_ONLY"' in ingress and 'each.value.invoked_by == "users"' in ingress


def test_invokers_are_granted_per_function(resources):
    for name, member in [
        ("push_invoker", "${google_service_account.push.member}"),
        ("scheduler_invoker", "${google_service_account.scheduler.member}"),
        ("api_invoker", "${each.value.member}"),
    ]:
        grant = resources[("google_cloud_run_service_iam_member", name)]
        assert grant["role"] == "roles/run.invoker"
        assert grant["member"] == member
    assert not [k for k in resources if k[0].endswith("_iam_binding") or k[0].endswith("_iam_policy")], (
        "authoritative IAM resources would remove other members' grants"
    )


def test_no_primitive_roles_and_no_public_access(resources):
    """Every role granted is a literal in a resource, a local, a variable default or a topology.json entry
    (the module refuses primitive roles there at plan time): none of them is owner, editor or viewer."""
    granted = [r["role"] for r in resources.values() if "role" in r]
    assert all(r.startswith("roles/") or r.startswith("${each.") for r in granted), granted
    locals_ = [
        {k: v for k, v in block.items() if k != "primitive_roles"}  # the module's deny-list
        for path in tf_files()
        for block in parse(path).get("locals", [])
    ]
    sources = [s for s in strings(locals_) if s.startswith("roles/")]
    sources += [
        m
        for s in strings([[v.get("type"), v.get("default")] for v in blocks("variable").values()])
        for m in re.findall(r"roles/[A-Za-z.]+", s)
    ]
    sources += strings(
        [
            f.get("project_roles", []) + f.get("dataset_roles", [])
            for f in json.loads(TOPOLOGY_FILE.read_text())["functions"]
        ]
    )
    sources += granted
    roles = [s for s in sources if s.startswith("roles/")]
    assert "roles/datastore.viewer" in roles
    assert not [r for r in roles if PRIMITIVE_ROLE_RE.fullmatch(r)], roles
    texts = [s for path in tf_files() for s in strings(parse(path))]
    assert not [s for s in texts if "allUsers" in s or "allAuthenticatedUsers" in s]


def test_primitive_role_rule_would_catch_one():
    assert PRIMITIVE_ROLE_RE.fullmatch("roles/editor")
    assert not PRIMITIVE_ROLE_RE.fullmatch("roles/bigquery.dataViewer")


def test_bundle_is_zipped_from_the_library_and_named_by_content(resources):
    archive = blocks("data")[("archive_file", "bundle")]
    assert archive["output_file_mode"] == "0644"
    assert archive["type"] == "zip"
    source = archive["dynamic"][0]["source"]
    assert source["for_each"] == "${each.value}"
    assert one(source, "content")["content"] == "${file(source.value)}"
    obj = resources[("google_storage_bucket_object", "bundle")]
    assert "${each.value.output_md5}" in obj["name"]
    build = one(resources[("google_cloudfunctions2_function", "function")], "build_config")
    storage = one(one(build, "source"), "storage_source")
    assert storage["object"] == "${google_storage_bucket_object.bundle[each.key].name}"
    module = (MODULE_DIR / "main.tf").read_text()
    assert '"sysevents/${p}"' in module and '"requirements.txt"' in module


def test_audit_table_schema_comes_from_the_file_the_code_uses(resources):
    bq = parse(TF_DIR / "bigquery.tf")["locals"][0]
    assert (
        bq["audit_schema"]
        == '${jsondecode(file("${path.module}/../shared/sysevents/auditlog/audit_schema.json"))}'
    )
    table = resources[("google_bigquery_table", "audit")]
    assert table["schema"] == "${jsonencode(local.audit_schema.fields)}"
    assert table["clustering"] == "${local.audit_schema.clustering}"


def test_secrets_never_land_in_state(resources):
    version = resources[("google_secret_manager_secret_version", "initial")]
    assert "secret_data" not in version and version["secret_data_wo"] == "${var.secret_values[each.key]}"
    assert blocks("variable")[("secret_values",)]["sensitive"] is True


def test_dead_letter_backlog_alert_watches_the_dead_letter_holds(resources):
    policy = resources[("google_monitoring_alert_policy", "dead_letter_backlog")]
    threshold = one(one(policy, "conditions"), "condition_threshold")
    assert "num_undelivered_messages" in threshold["filter"]
    assert "module.topology.dead_letter_holds" in threshold["filter"]


def test_firestore_indexes_are_for_queries_the_code_makes():
    """Composite indexes for the code's compound queries (equality filters would also work by index
    merging; a composite index makes each one a single index scan): each names a collection and fields
    the library actually queries."""
    doc = json.loads((TF_DIR / "firestore.indexes.json").read_text())
    code = "\n".join(p.read_text() for p in (REPO / "shared" / "sysevents").rglob("*.py"))
    queried = set(re.findall(r'FieldFilter\("(\w+)"', code))
    assert doc["indexes"]
    for index in doc["indexes"]:
        group = index["collectionGroup"]
        assert f'"{group}"' in code or f'"{group.removeprefix("alert_")}"' in code, group
        assert len(index["fields"]) >= 2, "single-field indexes are automatic"
        for field in index["fields"]:
            assert field["fieldPath"] in queried, (group, field)
            assert field.get("order") in ("ASCENDING", "DESCENDING") or field.get("arrayConfig") == "CONTAINS"


def test_examples_set_only_declared_variables_and_every_required_one():
    variables = root_blocks("variable")
    required = {name for (name,), v in variables.items() if "default" not in v}
    examples = sorted((TF_DIR / "examples").glob("*.tfvars"))
    assert examples
    for path in examples:
        values = parse(path)
        assert set(values) <= {name for (name,) in variables}, path
        assert required <= set(values), path


def test_generated_files_are_ignored_by_git():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert {"terraform/.terraform/", "terraform/.build/", ".venv-checkov/"} <= set(ignored)


def test_cloud_build_runs_checks_then_deploys_only_on_main():
    yaml = pytest.importorskip("yaml")
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {s["id"]: s for s in build["steps"]}
    assert list(steps) == [
        "install",
        "lint",
        "test",
        "terraform-fmt",
        "terraform-init",
        "terraform-validate",
        "terraform-plan",
        "terraform-apply",
    ]
    assert "pytest" in " ".join(steps["test"]["args"]) and "checkov" in " ".join(steps["test"]["args"])
    assert steps["terraform-fmt"]["args"][:2] == ["fmt", "-check"]
    apply = " ".join(steps["terraform-apply"]["args"])
    assert (
        '"$BRANCH_NAME" = "main"' in apply
        and "terraform apply -input=false -lock-timeout=300s tfplan" in apply
    )


def test_push_subscriptions_follow_the_topology_on_message_ordering(resources):
    """Ordered webhook jobs need an ordering-enabled subscription (topology.json says which)."""
    for name in ("push", "hold"):
        sub = resources[("google_pubsub_subscription", name)]
        assert sub["enable_message_ordering"] == "${each.value.enable_message_ordering}", name
    ordered = [
        s for s in json.loads(TOPOLOGY_FILE.read_text())["subscriptions"] if s.get("enable_message_ordering")
    ]
    assert "deliveries-webhook-push" in [s["name"] for s in ordered]


def test_export_target_datasets_are_granted_to_the_bigquery_sinks_function_only(resources):
    grant = resources[("google_bigquery_dataset_iam_member", "export_target")]
    assert grant["role"] == "roles/bigquery.dataEditor"
    assert grant["member"] == "${google_service_account.function[each.value.function].member}"
    assert "var.bigquery_export_datasets" in grant["for_each"]
    assert 'module.topology.sink_functions["bigquery"]' in grant["for_each"]


def test_email_function_without_smtp_host_is_flagged_at_plan():
    check = blocks("check")[("email_function_has_an_smtp_host",)]
    condition = one(check, "assert")["condition"]
    assert "SYSEVENTS_SMTP_HOST" in condition and "SYSEVENTS_SMTP_PASSWORD" in condition


@pytest.mark.parametrize(
    "var_file",
    [None, *sorted((TF_DIR / "examples").glob("*.tfvars"))],
    ids=lambda p: p.name if p else "defaults",
)
def test_variables_pass_their_validations_with_defaults_and_examples(tmp_path, var_file):
    """The validation rules run offline (Terraform evaluates them with the values): a rule that cannot
    hold for its own default, such as a regex() Terraform refuses (RE2 repeats stop at 1000), fails here."""
    rc, _, err = evaluate_locals(tmp_path, [], var_file=var_file)
    assert rc == 0, err
