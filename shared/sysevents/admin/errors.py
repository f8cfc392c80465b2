"""The admin API's one error shape: `{"error": {"field": ..., "message": ...}}` with an HTTP status."""

from __future__ import annotations

import json
from typing import Any

from flask import Response


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    def response(self) -> Response:
        return json_response({"error": {"field": self.field, "message": self.message}}, self.status)


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(doc, ensure_ascii=False, default=str, indent=None, separators=(",", ":"))
    return Response(body + "\n", status=status, mimetype="application/json", headers=headers or {})
