"""The web console: static files served by the admin function, with a strict Content-Security-Policy."""

from __future__ import annotations

from importlib import resources

from flask import Request, Response

ASSETS = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def serve(request: Request, asset: str) -> Response:
    if asset == "index.html" and not request.path.endswith("/"):
        return Response(status=308, headers={"Location": request.path + "/"})  # so relative assets resolve
    if asset not in ASSETS:
        return Response("not found\n", status=404, mimetype="text/plain")
    body = resources.files(__package__).joinpath(asset).read_bytes()
    resp = Response(body, mimetype=ASSETS[asset])
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-cache"
    return resp
