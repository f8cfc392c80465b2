"""`terraform validate` by real Terraform core against the google and archive providers' schemas.

The schemas come from the pinned CDKTF wheels (requirements/terraform-schema.txt, built by `make install`);
tfprovider.py serves them over the plugin protocol. Every mistake planted below must be refused with
Terraform's own message naming the file and the line.
"""

from __future__ import annotations

import re

import hcl2
import pytest
from tfhelpers import PROVIDERS, TF_DIR, provider_env, root_copy, schema, terraform_env

PLANTED_ARGUMENT = "planted_typo"
_BLOCK_START = re.compile(r'^(resource|data) "([a-z0-9_]+)" "([a-z0-9_]+)" \{$')


def _version_admits(constraint: str, version: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".")) + (0,) * (3 - v.count(".") - 1)

    ops = {
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
    }
    ops |= {"=": lambda a, b: a == b}
    for part in constraint.split(","):
        op, bound = re.fullmatch(r"\s*(>=|<=|>|<|=)\s*([\d.]+)\s*", part).groups()
        if not ops[op](key(version), key(bound)):
            return False
    return True


def test_schemas_are_the_versions_versions_tf_requires():
    with (TF_DIR / "versions.tf").open() as f:
        required = hcl2.load(f)["terraform"][0]["required_providers"][0]
    for name in PROVIDERS:
        built = schema(name)
        constraint = required[name]["version"].strip('"')
        assert _version_admits(constraint, built["version"]), (name, constraint, built["version"])
    assert schema("google")["version"] == "6.50.0"
    assert not _version_admits(">= 7.0, < 8.0", "6.50.0")


def test_the_schema_knows_what_the_root_module_uses():
    google = schema("google")
    function = google["resource_schemas"]["google_cloudfunctions2_function"]["block"]
    assert function["attributes"]["location"] == {"required": True, "type": "string"}
    assert function["attributes"]["url"] == {"computed": True, "type": "string"}
    service = function["block_types"]["service_config"]
    assert service["nesting_mode"] == "list" and service["max_items"] == 1
    assert service["block"]["attributes"]["environment_variables"]["type"] == ["map", "string"]
    assert (
        schema("archive")["data_source_schemas"]["archive_file"]["block"]["block_types"]["source"][
            "nesting_mode"
        ]
        == "set"
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return root_copy(tmp_path_factory.mktemp("validate"))


def _validate(root):
    return terraform_env(provider_env(root.parent), "validate", "-no-color", cwd=root)


def test_root_module_is_valid(copy):
    rc, out, err = _validate(copy)
    assert rc == 0, err
    assert "Success! The configuration is valid" in out


def _restore(root, saved):
    for name, text in saved.items():
        (root / name).write_text(text)


def test_a_typo_in_any_resource_file_is_refused_naming_file_and_line(copy):
    """Each .tf file's first resource or data block, copied under the label "planted" to the end of its file
    with a misspelled argument. (Copies: Terraform skips a block whose dependencies failed, so typos in
    blocks that depend on one another would hide each other.)"""
    planted, saved = {}, {}
    for path in sorted(copy.glob("*.tf")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if m := _BLOCK_START.match(line):
                body = lines[i + 1 : lines.index("}", i)]
                kind, type_name, _ = m.groups()
                at = len(lines) + 2  # after a blank line, the header; the typo is the line after it
                saved[path.name] = path.read_text()
                header = f'{kind} "{type_name}" "planted" {{'
                path.write_text(
                    saved[path.name]
                    + "\n"
                    + "\n".join([header, f'  {PLANTED_ARGUMENT} = "x"', *body, "}"])
                    + "\n"
                )
                planted[path.name] = (at + 1, kind, type_name)
                break
    assert len(planted) >= 10, planted
    try:
        rc, _, err = _validate(copy)
    finally:
        _restore(copy, saved)
    assert rc == 1
    for name, (line, kind, type_name) in planted.items():
        where = f'on {name} line {line}, in {kind} "{type_name}" "planted":'
        assert where in err, f"{name}: no error at line {line}\n{err}"
    assert err.count(f'An argument named "{PLANTED_ARGUMENT}" is not expected here.') == len(planted)


# Mistakes the provider's schema catches, each in a block appended to a file of the copy:
# (file, block, line of the error within the block, Terraform's summary, a phrase of its detail).
MISTAKES = [
    (
        "pubsub.tf",
        'resource "google_pubsub_subscription" "planted_missing" {\n  name = "planted"\n}\n',
        1,
        "Missing required argument",
        'The argument "topic" is required, but no definition was found.',
    ),
    (
        "pubsub.tf",
        'resource "google_pubsub_subscription" "planted_attribute" {\n  name  = "planted"\n  topic = "t"\n'
        '  push_config = {\n    push_endpoint = "https://example.com"\n  }\n}\n',
        4,
        "Unsupported argument",
        'Did you mean to define a block of type "push_config"?',
    ),
    (
        "iam.tf",
        'resource "google_service_account" "planted_block" {\n  account_id = "planted"\n'
        '  display_name {\n    text = "x"\n  }\n}\n',
        3,
        "Unsupported block type",
        'Blocks of type "display_name" are not expected here. Did you mean to define argument "display_name"?',
    ),
    (
        "pubsub.tf",
        'resource "google_pubsub_subscription" "planted_type" {\n  name  = "planted"\n  topic = "t"\n'
        '  ack_deadline_seconds = "soon"\n}\n',
        4,
        "Incorrect attribute value type",
        'Inappropriate value for attribute "ack_deadline_seconds": a number is required.',
    ),
    (
        "functions.tf",
        'resource "google_pubsub_topic" "planted_dangling" {\n  name = google_pubsub_topic.nowhere.name\n}\n',
        2,
        "Reference to undeclared resource",
        'A managed resource "google_pubsub_topic" "nowhere" has not been declared in the root module.',
    ),
    (
        "functions.tf",
        'resource "google_pubsub_topic" "planted_attr" {\n  name = google_service_account.push.mail\n}\n',
        2,
        "Unsupported attribute",
        'This object has no argument, nested block, or exported attribute named "mail".',
    ),
    (
        "outputs.tf",
        'resource "google_pubsub_topic" "planted_nested" {\n  name = "planted"\n'
        '  message_storage_policy {\n    allowed_persistence_region = ["europe-west1"]\n  }\n}\n',
        4,
        "Unsupported argument",
        'An argument named "allowed_persistence_region" is not expected here.',
    ),
]


def test_planted_mistakes_are_refused_with_terraforms_message(copy):
    edits, expected = [], []
    lengths = {name: len((copy / name).read_text().splitlines()) for name, *_ in MISTAKES}
    for name, block, line, summary, detail in MISTAKES:
        start = lengths[name] + 1  # blocks go at the end, one after another
        edits.append((name, lengths[name], "\n" + block))
        lengths[name] += block.count("\n") + 1
        expected.append((name, start + line, summary, detail))
    saved = _plant_all(copy, edits)
    try:
        rc, _, err = _validate(copy)
    finally:
        _restore(copy, saved)
    assert rc == 1
    errors = err.split("Error: ")[1:]
    for name, line, summary, detail in expected:
        hits = [e for e in errors if e.startswith(summary) and f"on {name} line {line}," in e]
        assert hits, f"no {summary!r} at {name}:{line}\n{err}"
        assert detail in " ".join(hits[0].split()), hits[0]


def _plant_all(root, edits):
    """Append each text at the end of its file, in order."""
    saved = {}
    for name, _, text in edits:
        path = root / name
        saved.setdefault(name, path.read_text())
        path.write_text(path.read_text() + text)
    return saved
