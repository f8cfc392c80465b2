"""What the `sysevents` commands share: the local stack's files, the admin API client, JSON in and out.

Against the local stack by default: `sysevents dev` writes the admin function's URL to
`.sysevents-dev/stack.json` and the demo account's key to `.sysevents-dev/admin.json`. Any deployment:
`--url` and `--key` (or SYSEVENTS_API_URL / SYSEVENTS_API_KEY).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import requests

DEV_DIR = Path(".sysevents-dev")
DEV_ENV_FILE = DEV_DIR / "stack.json"
ADMIN_FILE = DEV_DIR / "admin.json"
"""Written by `sysevents dev` (mode 0600): the local admin URL, the demo account and its keys."""


def _dev() -> dict[str, Any]:
    state: dict[str, Any] = {}
    stack = DEV_DIR / "stack.json"
    if stack.exists():
        state["url"] = json.loads(stack.read_text()).get("functions", {}).get("admin")
    if ADMIN_FILE.exists():
        state.update({k: v for k, v in json.loads(ADMIN_FILE.read_text()).items() if v})
    return state


class Api:
    def __init__(self, url: str | None, key: str | None, *, operator: bool = False):
        dev = _dev()
        self.url = (url or dev.get("url") or "").rstrip("/")
        self.key = key or dev.get("operator_key" if operator else "key")
        self.key_from_dev = not key
        if not self.url:
            raise click.UsageError(
                "no admin API URL: pass --url, set SYSEVENTS_API_URL, or run `sysevents dev`"
            )
        if not self.key:
            raise click.UsageError("no API key: pass --key or set SYSEVENTS_API_KEY")
        self.dev_aid = dev.get("aid")

    def call(self, method: str, path: str, *, expect_error: bool = False, **kw) -> requests.Response:
        headers = {"X-API-Key": self.key, **kw.pop("headers", {})}
        try:
            r = requests.request(method, self.url + path, headers=headers, timeout=60, **kw)
        except requests.RequestException as err:
            raise click.ClickException(f"cannot reach {self.url}: {type(err).__name__}") from None
        if r.status_code >= 400 and not expect_error:
            raise click.ClickException(error_text(r))
        return r


def error_text(r: requests.Response) -> str:
    try:
        err = r.json()["error"]
        return f"HTTP {r.status_code}: " + (f"{err['field']}: " if err.get("field") else "") + err["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status_code}: {r.text[:500]}"


def echo(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def read_json(path: str, what: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"{what} is not JSON: {err}") from None


url_option = click.option(
    "--url", envvar="SYSEVENTS_API_URL", help="Admin API URL (default: the local stack's)."
)
key_option = click.option(
    "--key", envvar="SYSEVENTS_API_KEY", help="API key (default: the local demo account's)."
)


def use_dev_stack_env() -> dict | None:
    """When no emulator is configured, point the Google clients at a running `sysevents dev` stack."""
    if os.environ.get("PUBSUB_EMULATOR_HOST") or not DEV_ENV_FILE.exists():
        return None
    state = json.loads(DEV_ENV_FILE.read_text())
    for key, value in state["env"].items():
        os.environ.setdefault(key, value)
    return state
