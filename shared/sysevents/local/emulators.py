"""Finding and starting Google's Pub/Sub and Firestore emulators and the BigQuery emulator.

Each start function returns at once, the process not ready yet: the caller waits (`wait_all_ready`).
Ports come from the caller's `PortAllocator` (a stack's), else from `free_port`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from sysevents.local.processes import PortAllocator, Process, free_port, http_ok, log_contains

INSTALL_HINT = (
    "Install Google's emulators (they need Java 17+):\n"
    "  gcloud components install pubsub-emulator cloud-firestore-emulator\n"
    "or, with Debian/Ubuntu packages of the Google Cloud CLI:\n"
    "  apt-get install google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator\n"
    "or point SYSEVENTS_GCLOUD_SDK_ROOT at a Cloud SDK that has them."
)

_STANDARD_ROOTS = (
    "/usr/lib/google-cloud-sdk",
    "/usr/share/google-cloud-sdk",
    "/opt/google-cloud-sdk",
    str(Path.home() / "google-cloud-sdk"),
)


class EmulatorMissing(RuntimeError):
    pass


def sdk_roots() -> list[Path]:
    """Where to look for the Cloud SDK: the override, `gcloud info`, then the standard places."""
    roots: list[str] = []
    if os.environ.get("SYSEVENTS_GCLOUD_SDK_ROOT"):
        roots.append(os.environ["SYSEVENTS_GCLOUD_SDK_ROOT"])
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            out = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.strip()
            if out:
                roots.append(out)
        except (OSError, subprocess.TimeoutExpired):
            pass
    roots.extend(_STANDARD_ROOTS)
    return [Path(r) for r in dict.fromkeys(roots)]


def _find(relative: str, what: str) -> Path:
    for root in sdk_roots():
        candidate = root / "platform" / relative
        if candidate.exists():
            return candidate
    raise EmulatorMissing(f"{what} not found (looked in {', '.join(map(str, sdk_roots()))}).\n{INSTALL_HINT}")


def _port(ports: PortAllocator | None) -> int:
    return ports.take() if ports is not None else free_port()


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise EmulatorMissing(
            "java not found: the Google emulators need a Java 17+ runtime "
            "(apt-get install openjdk-17-jre-headless)."
        )
    return java


def pubsub(workdir: Path, ports: PortAllocator | None = None) -> tuple[Process, str]:
    """Start the Pub/Sub emulator; returns the process and its host:port (for PUBSUB_EMULATOR_HOST)."""
    script = _find("pubsub-emulator/bin/cloud-pubsub-emulator", "Pub/Sub emulator")
    _java()
    port = _port(ports)
    data = workdir / "pubsub-data"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / "logs" / "pubsub-emulator.log"
    proc = Process(
        "pubsub-emulator",
        [str(script), "--host=127.0.0.1", f"--port={port}", f"--data-dir={data}"],
        log,
        ready=log_contains(log, f"Server started, listening on {port}"),
    ).start()
    return proc, f"127.0.0.1:{port}"


def firestore(workdir: Path, ports: PortAllocator | None = None) -> tuple[Process, str]:
    """Start the Firestore emulator; returns the process and its host:port (for FIRESTORE_EMULATOR_HOST)."""
    jar = _find("cloud-firestore-emulator/cloud-firestore-emulator.jar", "Firestore emulator")
    port = _port(ports)
    log = workdir / "logs" / "firestore-emulator.log"
    proc = Process(
        "firestore-emulator",
        [
            _java(),
            "-cp",
            str(jar),
            "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
            "start",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        log,
        ready=http_ok(f"http://127.0.0.1:{port}/", b"Ok"),
    ).start()
    return proc, f"127.0.0.1:{port}"


def prepare_bigquery() -> None:
    """bqemulator's DuckDB extensions come from wheels; register them once per HOME (else it downloads)."""
    code = (
        "from duckdb_extensions import import_extension\n"
        "import_extension('spatial'); import_extension('avro')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def bigquery(workdir: Path, project: str, ports: PortAllocator | None = None) -> tuple[Process, str]:
    """Start bqemulator (REST + gRPC); returns the process and its REST endpoint URL."""
    exe = shutil.which("bqemulator") or str(Path(sys.executable).with_name("bqemulator"))
    if not Path(exe).exists():
        raise EmulatorMissing("bqemulator not found: run `make install` (it is a dev dependency).")
    prepare_bigquery()
    rest, grpc = _port(ports), _port(ports)
    log = workdir / "logs" / "bigquery-emulator.log"
    proc = Process(
        "bigquery-emulator",
        [
            exe,
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(rest),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc),
            "--project",
            project,
            "--log-level",
            "warning",
        ],
        log,
        cwd=workdir,
        ready=http_ok(f"http://127.0.0.1:{rest}/"),
    ).start()
    return proc, f"http://127.0.0.1:{rest}"


TASKS_LAUNCHER = Path(__file__).with_name("tasks_emulator.py")


def tasks_python() -> Path:
    """The Cloud Tasks emulator's interpreter: SYSEVENTS_TASKS_EMULATOR_PYTHON, else the repository's
    .venv-tasks (made by `make install` from requirements/tasks-emulator.txt)."""
    override = os.environ.get("SYSEVENTS_TASKS_EMULATOR_PYTHON")
    exe = (
        Path(override) if override else Path(__file__).resolve().parents[3] / ".venv-tasks" / "bin" / "python"
    )
    if not exe.exists():
        raise EmulatorMissing(
            f"the Cloud Tasks emulator is not installed ({exe} is missing): run `make install` "
            "(it makes .venv-tasks from requirements/tasks-emulator.txt), or set SYSEVENTS_TASKS_EMULATOR_PYTHON."
        )
    return exe


def tasks(workdir: Path, queue: str, ports: PortAllocator | None = None) -> tuple[Process, str]:
    """Start the Cloud Tasks emulator on 127.0.0.1 with `queue`; returns the process and its host:port."""
    port = _port(ports)
    log = workdir / "logs" / "tasks-emulator.log"
    proc = Process(
        "tasks-emulator",
        [
            str(tasks_python()),
            str(TASKS_LAUNCHER),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--queue",
            queue,
        ],
        log,
        env={"PYTHONUNBUFFERED": "1"},
        ready=log_contains(log, f"ready on 127.0.0.1:{port}"),
    ).start()
    return proc, f"127.0.0.1:{port}"
