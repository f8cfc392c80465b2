"""functions/requirements.txt (in every function bundle) = pyproject's runtime dependencies at the lock's versions.

Regenerate it with: .venv/bin/python tests/terraform/test_terraform_requirements.py
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "functions" / "requirements.txt"
HEADER = (
    "# Runtime requirements of every function bundle: pyproject.toml's dependencies pinned at\n"
    "# requirements/lock.txt's versions. Generated: python tests/terraform/test_terraform_requirements.py\n"
)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def expected() -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)", line.strip())
        if m:
            pins[_norm(m.group(1))] = m.group(3)
    lines = []
    for dep in deps:
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?", dep)
        name, extras = _norm(m.group(1)), m.group(2) or ""
        if name not in pins:
            raise LookupError(f"{name} is a runtime dependency but requirements/lock.txt does not pin it")
        lines.append(f"{name}{extras}=={pins[name]}")
    return HEADER + "\n".join(sorted(lines)) + "\n"


def test_function_requirements_match_pyproject_and_lock():
    assert REQUIREMENTS.read_text() == expected(), (
        "functions/requirements.txt is out of date; regenerate it with "
        "`.venv/bin/python tests/terraform/test_terraform_requirements.py`"
    )


def test_every_pinned_requirement_is_installed_here():
    """The versions the functions get are the ones the tests ran with."""
    from importlib.metadata import version

    for line in REQUIREMENTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, pin = re.sub(r"\[.*\]", "", line).split("==")
            assert version(name) == pin, line


if __name__ == "__main__":
    REQUIREMENTS.write_text(expected())
    sys.stdout.write(REQUIREMENTS.read_text())
