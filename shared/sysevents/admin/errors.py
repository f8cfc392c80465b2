"""The admin API's one error shape: `{"error": {"field": ..., "message": ...}}` with an HTTP status."""

from __future__ import annotations

import json
from typing import Any

from flask import Response


class ApiError(Exception):
    """`position` (line, column), both from 1: where in the field's text it goes wrong (filter expressions)."""

    def __init__(
        self, status: int, message: str, field: str | None = None, position: tuple[int, int] | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.field, self.position = status, message, field, position

    def response(self) -> Response:
        error: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.position:
            error["position"] = {"line": self.position[0], "column": self.position[1]}
        return json_response({"error": error}, self.status)


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(doc, ensure_ascii=False, default=str, indent=None, separators=(",", ":"))
    return Response(body + "\n", status=status, mimetype="application/json", headers=headers or {})
