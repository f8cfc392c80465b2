"""The admin API (HTTP): accounts, API keys and jobs. Entry point: `handle(request)`."""

from __future__ import annotations

from flask import Request, Response


def handle(request: Request) -> Response:
    from sysevents.admin.api import dispatch

    return dispatch(request)
