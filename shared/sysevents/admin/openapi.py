"""The OpenAPI 3.1 document, generated from the route table (sysevents.admin.api.ROUTES) and the schemas
(sysevents.admin.schemas)."""

from __future__ import annotations

import re
from typing import Any

from sysevents.admin.keys import SCOPE_DOCS
from sysevents.admin.schemas import ERRORS, OBJ, SCHEMAS, STR, ref

_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": STR,
    "description": "The version you read (the ETag of GET).",
}
OPTIONAL_BODIES = ("PreviewInput", "TestInput", "ResumeInput")
"""POST bodies that may be left out."""
SCOPES_TEXT = (
    "An account key has one scope, each allowing what the one before it does: "
    + "; ".join(f"{k}: {v}" for k, v in SCOPE_DOCS.items())
    + ". Each operation's x-scope names the scope it needs (operator: the operator key only), a key "
    "without it gets 403; the operator key may call every operation. Revoked or expired keys, and keys "
    "minted from a revoked key, get 401."
)


def openapi_path(rule: str) -> str:
    return _PARAM.sub(r"{\1}", rule)


def operation(r) -> dict[str, Any]:
    """The OpenAPI operation of one route."""
    op: dict[str, Any] = {
        "operationId": r.handler.__name__,
        "summary": r.summary,
        "parameters": [
            {"name": n, "in": "path", "required": True, "schema": STR} for n in _PARAM.findall(r.path)
        ]
        + [
            {"name": n, "in": "query", "required": False, "description": d, "schema": STR} for n, d in r.query
        ],
        "responses": {
            str(r.ok): {
                "description": "OK",
                "content": {"application/json": {"schema": ref(r.response) if r.response else OBJ}},
            }
        },
    }
    if r.method in ("PUT", "PATCH", "DELETE") or r.path.endswith(("/pause", "/resume")):
        op["parameters"].append(IF_MATCH)
    if r.body:
        op["requestBody"] = {
            "required": r.method != "POST" or r.body not in OPTIONAL_BODIES,
            "content": {"application/json": {"schema": ref(r.body)}},
        }
    if r.auth == "none":
        op["security"] = []
    else:
        op["x-scope"] = "operator" if r.auth == "operator" else r.scope
        op["responses"].update(
            {
                code: {"description": d, "content": {"application/json": {"schema": ref("Error")}}}
                for code, d in ERRORS.items()
            }
        )
    return op


def document(routes) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        paths.setdefault(openapi_path(r.path), {})[r.method.lower()] = operation(r)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sysevents admin API",
            "version": "1",
            "description": "Manage export and alert jobs. Every route but / and /openapi.json needs a key "
            "(X-API-Key); routes under /accounts/{aid} accept only that account's keys "
            "and the operator key.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": SCOPES_TEXT,
                    "x-scopes": SCOPE_DOCS,
                },
                "bearer": {"type": "http", "scheme": "bearer", "description": SCOPES_TEXT},
            },
        },
        "security": [{"apiKey": []}, {"bearer": []}],
    }
