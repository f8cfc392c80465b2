"""The Terraform topology module, applied offline (it needs no provider), agrees with sysevents.topology.

Terraform deploys whatever this module derives from topology.json, so these tests pin down what gets
deployed: topics, push and hold subscriptions, every function with its grants, bundles and schedules.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile

import pytest
from tfhelpers import FUNCTIONS_DIR, LIBRARY_DIR, TOPOLOGY_FILE, evaluate_topology

from sysevents import topology as topology_mod

DEFAULT_ROLES = ["roles/datastore.viewer"]


@pytest.fixture(scope="module")
def topo() -> topology_mod.Topology:
    return topology_mod.parse(json.loads(TOPOLOGY_FILE.read_text()))


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> dict:
    rc, outputs, err = evaluate_topology(tmp_path_factory.mktemp("topology"))
    assert rc == 0, err
    return outputs


def test_topics_agree(out, topo):
    assert set(out["topics"]) == set(topo.topics)


def test_push_subscriptions_agree(out, topo):
    expected = {s.name: s for s in topo.subscriptions.values() if s.push_function}
    assert set(out["push_subscriptions"]) == set(expected)
    for name, s in expected.items():
        got = out["push_subscriptions"][name]
        assert got["topic"] == s.topic
        assert got["push_function"] == s.push_function
        assert got["ack_deadline_seconds"] == s.ack_deadline_seconds
        assert got["message_retention_seconds"] == s.message_retention_seconds
        assert got["dead_letter_topic"] == s.dead_letter_topic
        assert got["max_delivery_attempts"] == s.max_delivery_attempts
        assert got["minimum_backoff_seconds"] == s.retry_policy.minimum_backoff_seconds
        assert got["maximum_backoff_seconds"] == s.retry_policy.maximum_backoff_seconds
        assert got["enable_message_ordering"] == getattr(s, "enable_message_ordering", False)


def test_hold_subscriptions_agree(out, topo):
    expected = {s.name: s for s in topo.subscriptions.values() if not s.push_function}
    assert {k: v["topic"] for k, v in out["hold_subscriptions"].items()} == {
        k: s.topic for k, s in expected.items()
    }


def test_every_dead_letter_topic_is_held_and_watched(out, topo):
    dead_letter_topics = {s.dead_letter_topic for s in topo.subscriptions.values() if s.dead_letter_topic}
    dead_letter_topics |= {s.dead_letter_topic for s in topo.sinks.values()}
    assert set(out["dead_letter_topics"]) == dead_letter_topics
    assert {h["topic"] for h in out["dead_letter_holds"].values()} == dead_letter_topics


def test_schedules_agree(out, topo):
    expected = {
        f"{f.name}-{s['name']}": (f.name, s["cron"], s.get("path", "/"))
        for f in topo.functions.values()
        for s in f.schedules
    }
    assert {k: (v["function"], v["cron"], v["path"]) for k, v in out["schedules"].items()} == expected


def test_every_function_is_deployed_with_its_settings(out, topo):
    assert set(out["functions"]) == set(topo.functions)
    for name, f in topo.functions.items():
        got = out["functions"][name]
        assert got["entry_point"] == f.entry_point
        assert got["invoked_by"] == f.invoked_by
        assert got["project_roles"] == sorted(
            set(f.project_roles if f.project_roles is not None else DEFAULT_ROLES)
        )
        assert got["dataset_roles"] == sorted(set(f.dataset_roles))
        assert set(f.publishes) <= set(got["publishes"])
        assert got["secrets"] == f.secrets
        assert got["memory"] == (f.memory or "512Mi")


def test_each_function_is_fed_by_its_push_subscriptions(out, topo):
    for name in topo.functions:
        fed = sorted(s.name for s in topo.subscriptions.values() if s.push_function == name)
        assert out["functions"][name]["fed_by"] == fed


def test_ingest_may_publish_to_quarantine_and_every_sink(out, topo):
    ingest = next(
        s.push_function
        for s in topo.subscriptions.values()
        if s.push_function and s.topic == topo.ingest_topic and s.name.endswith("ingest")
    )
    publishes = set(out["functions"][ingest]["publishes"])
    assert topo.quarantine_topic in publishes
    assert {s.topic for s in topo.sinks.values()} <= publishes


def test_sink_functions_may_publish_to_their_dead_letter_topic(out, topo):
    for sink in topo.sinks.values():
        function = topo.sink_subscription(sink.name).push_function
        assert sink.dead_letter_topic in out["functions"][function]["publishes"]


def test_functions_publish_only_what_they_need(out, topo):
    """Least privilege: nothing beyond the entry's `publishes` and what the topology implies."""
    sink_topics = {s.topic for s in topo.sinks.values()}
    for name, f in topo.functions.items():
        implied = set(f.publishes)
        for sink in topo.sinks.values():
            if topo.sink_subscription(sink.name).push_function == name:
                implied.add(sink.dead_letter_topic)
        if any(s.push_function == name and s.topic == topo.ingest_topic for s in topo.subscriptions.values()):
            implied |= sink_topics | {topo.quarantine_topic}
        assert set(out["functions"][name]["publishes"]) == implied, name


def _library_files() -> set[str]:
    return {
        "sysevents/" + p.relative_to(LIBRARY_DIR).as_posix()
        for p in LIBRARY_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_bundles_hold_the_function_requirements_and_the_whole_library(out, topo):
    library = _library_files()
    assert "sysevents/__init__.py" in library and "sysevents/topology.json" in library
    for name in topo.functions:
        files = out["bundles"][name]
        assert files["main.py"] == f"{FUNCTIONS_DIR}/{name}/main.py"
        assert files["requirements.txt"] == f"{FUNCTIONS_DIR}/requirements.txt"
        assert library <= set(files), f"{name}: bundle lacks {sorted(library - set(files))}"
        assert not [p for p in files if "__pycache__" in p or p.endswith(".pyc")]


@pytest.mark.parametrize("function", sorted(topology_mod.load().functions))
def test_bundle_imports_its_entry_point_from_the_zip_alone(out, function, tmp_path):
    """Build the zip exactly as bundle.tf does (these files at these paths) and import main.py from it:
    `sysevents` must come from the zip, not from this checkout."""
    files = out["bundles"][function]
    archive = tmp_path / f"{function}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for arcname, source in files.items():
            z.writestr(arcname, open(source, encoding="utf-8").read())  # noqa: SIM115 - like file() in HCL
    unpacked = tmp_path / "bundle"
    zipfile.ZipFile(archive).extractall(unpacked)
    entry = out["functions"][function]["entry_point"]
    probe = (
        "import sys; sys.path.insert(0, '.'); import main, sysevents; "
        f"assert callable(main.{entry}); print(sysevents.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(unpacked / "sysevents" / "__init__.py")


# -- functions others add: deployed from their topology.json entry, without editing any .tf file ---------------


def _scratch_functions(tmp_path, names):
    d = tmp_path / "functions"
    for name in names:
        (d / name).mkdir(parents=True)
        (d / name / "main.py").write_text("def handle(request):\n    return 'ok'\n")
    (d / "requirements.txt").write_text("functions-framework\n")
    return d


def _with_probe(doc: dict, **extra) -> dict:
    doc = copy.deepcopy(doc)
    doc["functions"].append(
        {"name": "probe", "entry_point": "handle", "description": "An HTTP API.", **extra}
    )
    return doc


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(TOPOLOGY_FILE.read_text())


def test_a_new_function_with_every_optional_field(doc, tmp_path):
    secret = doc["secrets"][0]["name"]
    new = _with_probe(
        doc,
        invoked_by="users",
        project_roles=["roles/datastore.user"],
        publishes=[doc["ingest_topic"]],
        secrets={"SYSEVENTS_SEALING_KEYS": secret},
        env={"SYSEVENTS_ADMIN_MAX_BODY_BYTES": 1000},
        memory="1Gi",
        max_instances=3,
        schedules=[{"name": "flush", "cron": "*/5 * * * *", "path": "/flush", "body": {"all": True}}],
    )
    functions = _scratch_functions(tmp_path, [f["name"] for f in new["functions"]])
    rc, out, err = evaluate_topology(tmp_path / "tf", new, functions_dir=functions)
    assert rc == 0, err
    probe = out["functions"]["probe"]
    assert probe["invoked_by"] == "users"
    assert probe["project_roles"] == ["roles/datastore.user"]
    assert probe["publishes"] == [doc["ingest_topic"]]
    assert probe["secrets"] == {"SYSEVENTS_SEALING_KEYS": secret}
    assert probe["env"] == {"SYSEVENTS_ADMIN_MAX_BODY_BYTES": "1000"}
    assert (probe["memory"], probe["max_instances"], probe["timeout_seconds"]) == ("1Gi", 3, 60)
    assert probe["fed_by"] == []
    assert out["schedules"]["probe-flush"] == {
        "function": "probe",
        "name": "flush",
        "cron": "*/5 * * * *",
        "time_zone": "Etc/UTC",
        "path": "/flush",
        "body": '{"all":true}',
    }
    assert set(out["bundles"]["probe"]) >= {"main.py", "requirements.txt", "sysevents/__init__.py"}
    # The library parses the same entry.
    assert topology_mod.parse(new).functions["probe"].invoked_by == "users"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"secrets": {"X": "no-such-secret"}}, "not declared in topology.json's secrets: no-such-secret"),
        ({"project_roles": ["roles/editor"]}, "Primitive roles are not allowed: probe: roles/editor"),
        ({"dataset_roles": ["roles/owner"]}, "Primitive roles are not allowed: probe: roles/owner"),
        ({"publishes": ["no-such-topic"]}, "undeclared topics: probe -> no-such-topic"),
        ({"invoked_by": "everyone"}, "invoked_by must be"),
        ({"schedules": [{"name": "x", "cron": "* * * * *", "path": "flush"}]}, "must start with"),
    ],
)
def test_a_wrong_function_entry_is_refused_with_a_reason(doc, tmp_path, extra, message):
    new = _with_probe(doc, **extra)
    functions = _scratch_functions(tmp_path, [f["name"] for f in new["functions"]])
    rc, _, err = evaluate_topology(tmp_path / "tf", new, functions_dir=functions)
    assert rc != 0
    assert message in " ".join(err.split()), err


def test_a_function_without_main_py_is_refused(doc, tmp_path):
    new = _with_probe(doc)
    functions = _scratch_functions(tmp_path, [f["name"] for f in doc["functions"]])
    rc, _, err = evaluate_topology(tmp_path / "tf", new, functions_dir=functions)
    assert rc != 0
    assert "without functions/<name>/main.py: probe" in " ".join(err.split())
