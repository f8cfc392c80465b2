"""Jsonnet templates, sandboxed: the one place that knows which Jsonnet binding renders them.

A template is a Jsonnet expression with `event` in scope (the CloudEvents envelope; `event.data`
carries aid, subject_type, subject_id, verb and the free-form fields). Imports are refused, recursion is
bounded by `MAX_STACK`, and the output size is capped.

Binding: `rjsonnet` (Rust, jrsonnet), chosen by measurement (bench/bench_templates.py): ~5k renders/s
here against ~570/s for `gojsonnet` and ~8/s for the C++ `jsonnet` package.
"""

from __future__ import annotations

import json
import re
from typing import Any

import rjsonnet

MAX_STACK = 200
TEMPLATE_NAME = "json_template"

SAMPLE_EVENT = {
    "specversion": "1.0",
    "id": "00000000-0000-4000-8000-000000000000",
    "source": "//sysevents/accounts/12",
    "type": "com.sysevents.work.failed",
    "subject": "work/work-id-1",
    "time": "2026-01-01T00:00:00Z",
    "datacontenttype": "application/json",
    "data": {
        "aid": "12",
        "subject_type": "work",
        "subject_id": "work-id-1",
        "verb": "failed",
        "notes": "Export to warehouse failed",
    },
}
"""An event to render templates against when checking them at save time."""


class TemplateError(ValueError):
    """The template did not render; the message names the line and column (in the template's own lines)."""


def _refuse_import(base: str, rel: str) -> tuple[str, str]:
    raise TemplateError(f"imports are not allowed in templates (tried {rel!r})")


def _evaluate(name: str, template: str, variables: dict[str, Any], max_output_bytes: int) -> str:
    """Evaluate a template with `variables` in scope; the output (JSON text). The one place that runs Jsonnet."""
    prelude = "".join(f"local {k} = std.extVar({json.dumps(k)});\n" for k in variables)
    try:
        out = rjsonnet.evaluate_snippet(
            name,
            prelude + template,
            ext_codes={k: json.dumps(v) for k, v in variables.items()},
            import_callback=_refuse_import,
            max_stack=MAX_STACK,
        )
    except RuntimeError as err:
        # The prelude adds one line per variable before the template; report positions in the user's lines.
        shift = len(variables)
        msg = re.sub(
            re.escape(name) + r":(\d+):", lambda m: f"{name}:{max(1, int(m.group(1)) - shift)}:", str(err)
        )
        lines = msg.replace("import_callback error: TemplateError: ", "").splitlines()
        if len(lines) > 8:  # deep stack traces say the same thing many times
            lines = lines[:8] + [f"... ({len(lines) - 8} more lines)"]
        raise TemplateError("\n".join(lines)) from None
    size = len(out.encode())
    if size > max_output_bytes:
        raise TemplateError(f"template output is {size} bytes; the limit is {max_output_bytes}")
    return out


def render(
    template: str | None,
    event: dict[str, Any],
    *,
    max_output_bytes: int = 1024 * 1024,
    aid: str | None = None,
) -> bytes:
    """Render the template for one event (a CloudEvents dict). Without a template the body is the event.
    `aid`, the account whose template it is, is what the sandbox takes turns by; in process it changes nothing."""
    if template is None or not template.strip():
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    return _evaluate(TEMPLATE_NAME, template, {"event": event}, max_output_bytes).encode()


def check(template: str | None) -> bytes:
    """Render against SAMPLE_EVENT, raising TemplateError: the save-time check."""
    return render(template, SAMPLE_EVENT)


def render_value(
    template: str,
    variables: dict[str, Any],
    *,
    name: str = TEMPLATE_NAME,
    max_output_bytes: int = 1024 * 1024,
    aid: str | None = None,
) -> Any:
    """Render a template with several variables in scope (e.g. `event`, `link`) and return its JSON value
    (text templates evaluate to a string). Same sandbox, error messages and `aid` as `render`."""
    return json.loads(_evaluate(name, template, variables, max_output_bytes))
