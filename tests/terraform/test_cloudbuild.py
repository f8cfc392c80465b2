"""cloudbuild.yaml against Cloud Build's config schema (cloudbuild.schema.json, the documented fields), its
substitutions, and its Terraform steps run here with the embedded Terraform and the schema-serving providers."""

from __future__ import annotations

import json
import re

import jsonschema_rs
import pytest
import yaml
from tfhelpers import REPO, TF_DIR, provider_env, root_copy, terraform, terraform_env

CONFIG = REPO / "cloudbuild.yaml"
SCHEMA = json.loads((REPO / "tests" / "terraform" / "cloudbuild.schema.json").read_text())
# https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values
BUILT_IN = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "TRIGGER_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
    "COMMIT_SHA",
    "REVISION_ID",
    "SHORT_SHA",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "_HEAD_BRANCH",
    "_BASE_BRANCH",
    "_HEAD_REPO_URL",
    "_PR_NUMBER",
}
_SUBSTITUTION = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@pytest.fixture(scope="module")
def build():
    return yaml.safe_load(CONFIG.read_text())


def _errors(doc):
    return [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}"
        for e in jsonschema_rs.validator_for(SCHEMA).iter_errors(doc)
    ]


def test_cloudbuild_yaml_matches_the_config_schema(build):
    assert _errors(build) == []


@pytest.mark.parametrize(
    "mistake",
    [
        lambda b: b["steps"][0].update(dirr="terraform"),
        lambda b: b["options"].update(machineType="E2_HIGHCPU_16"),
        lambda b: b.update(timeout="1h"),
        lambda b: b["substitutions"].update(TF_IMAGE="x"),
        lambda b: b["steps"][0].pop("name"),
    ],
    ids=["unknown step field", "machine type", "timeout", "substitution without _", "step without name"],
)
def test_the_schema_refuses_a_planted_mistake(build, mistake):
    doc = json.loads(json.dumps(build))
    mistake(doc)
    assert _errors(doc), "the schema let a mistake through"


def _used(build) -> set[str]:
    text = json.dumps(build["steps"]).replace("$$", "")
    return {a or b for a, b in _SUBSTITUTION.findall(text)}


def test_every_substitution_is_declared_or_built_in_and_every_declared_one_used(build):
    declared = set(build["substitutions"])
    assert _used(build) - declared - BUILT_IN == set()
    assert declared - _used(build) == set()


def test_step_ids_are_unique_and_waits_name_steps(build):
    ids = [s["id"] for s in build["steps"]]
    assert len(ids) == len(set(ids))
    for step in build["steps"]:
        assert set(step.get("waitFor", [])) <= set(ids) | {"-"}, step["id"]


def test_the_terraform_image_is_the_terraform_the_tests_run(build):
    rc, out, _ = terraform("version", "-json")
    assert rc == 0
    assert (
        build["substitutions"]["_TF_IMAGE"] == f"hashicorp/terraform:{json.loads(out)['terraform_version']}"
    )


def test_the_make_targets_the_steps_run_exist(build):
    makefile = (REPO / "Makefile").read_text()
    for step in build["steps"]:
        for target in re.findall(r"\bmake (\w+)", " ".join(step.get("args", []))):
            assert re.search(rf"^{target}:", makefile, re.MULTILINE), (step["id"], target)


def test_the_tfvars_substitution_names_an_example(build):
    assert (TF_DIR / build["substitutions"]["_TFVARS"]).is_file()


def _substitute(value: str, subs: dict[str, str]) -> str:
    return _SUBSTITUTION.sub(lambda m: subs.get(m[1] or m[2], m[0]), value)


def test_the_terraform_steps_run_here(build, tmp_path):
    """The fmt and validate steps (the Terraform image's own entrypoint), run with the embedded Terraform in a
    copy of the repository. init needs the GCS state bucket and plan the project's credentials: the plan
    tests plan the same var files against the provider schemas instead."""
    root = root_copy(tmp_path)
    env = provider_env(tmp_path)
    ran = []
    for step in build["steps"]:
        if (
            step["name"] != "${_TF_IMAGE}"
            or "entrypoint" in step
            or step["args"][0] not in ("fmt", "validate")
        ):
            continue
        args = [_substitute(a, build["substitutions"]) for a in step["args"]]
        cwd = root.parent / step.get("dir", ".")
        rc, out, err = terraform_env(env, *args, "-no-color", cwd=cwd)
        assert rc == 0, f"step {step['id']}: terraform {' '.join(args)}\n{out}{err}"
        ran.append(step["id"])
    assert ran == ["terraform-fmt", "terraform-validate"]
