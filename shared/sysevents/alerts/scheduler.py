"""The local stand-in for Cloud Scheduler: POST the email function's /flush route every few seconds."""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request

log = logging.getLogger("sysevents.alerts")


class FlushTicker:
    def __init__(self, url: str, every: float = 1.0):
        self.url = url
        self.every = every
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts-flush", daemon=True)

    def start(self) -> FlushTicker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            req = urllib.request.Request(self.url, data=b"", method="POST")  # noqa: S310 - our local function
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
                    resp.read()
                self.ticks += 1
            except (OSError, urllib.error.URLError) as err:
                log.warning("alerts: flush tick failed: %s", err)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=70)
