"""The local stand-in for Cloud Scheduler: POST each function's `schedules` paths every few seconds.

Production runs them on their cron (Terraform makes a Cloud Scheduler job per topology.json `schedules`
entry); locally every entry is called every `every` seconds, one call at a time per entry.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request

from sysevents.topology import Topology

log = logging.getLogger("sysevents.scheduler")


class ScheduleTicker:
    """POSTs `body` (JSON) to `url` every `every` seconds, on its own thread, until stopped."""

    def __init__(self, url: str, every: float = 1.0, *, body: object = None, name: str = "schedule"):
        self.url = url
        self.every = every
        self.name = name
        self.body = json.dumps(body if body is not None else {}).encode()
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ticker-{name}", daemon=True)

    def start(self) -> ScheduleTicker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            req = urllib.request.Request(  # noqa: S310 - our local function
                self.url, data=self.body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310
                    resp.read()
                self.ticks += 1
            except (OSError, urllib.error.URLError) as err:
                log.warning("scheduler: %s tick failed: %s", self.name, err)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=130)


def tickers(topology: Topology, function_urls: dict[str, str], every: float = 1.0) -> list[ScheduleTicker]:
    """One (unstarted) ticker per `schedules` entry of each running function."""
    out = []
    for name, url in function_urls.items():
        for s in topology.functions[name].schedules:
            out.append(
                ScheduleTicker(
                    url.rstrip("/") + s.get("path", "/"),
                    every,
                    body=s.get("body"),
                    name=f"{name}-{s['name']}",
                )
            )
    return out
