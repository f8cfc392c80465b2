"""Helpers for the admin API tests (a unique module name: conftest is taken by several directories)."""

from __future__ import annotations

from dataclasses import dataclass

PUBLIC_URL = "https://8.8.8.8/hook"  # a public address that needs no DNS (no test publishes what it wants)


def webhook_job(url: str = PUBLIC_URL, **config) -> dict:
    """A job in the seed's shape, wanting events no test publishes (report synccomplete)."""
    return {
        "workflow": "webhook_system_events",
        "config": {
            "system_event_type": "synccomplete",
            "system_event_sources": {"report": []},
            "webhook_url": url,
            **config,
        },
    }


def seed_job(url: str = PUBLIC_URL) -> dict:
    """The seed's webhook job, verbatim."""
    return {
        "workflow": "webhook_system_events",
        "config": {
            "system_event_multiple_types": ["updated", "created", "failed"],
            "system_event_sources": {"work": [], "segment": []},
            "webhook_url": url,
            "headers": {"X-Team": "data"},
        },
    }


SLACK = (
    'local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; '
    '{"text": "Alert notification: " + note + ". For more info go to: '
    'https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }'
)
"""The seed's Slack template, verbatim."""


@dataclass
class Account:
    aid: str
    key: str
    prefix: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


def make_account(admin, operator, aid: str, scope: str = "admin") -> Account:
    r = admin.post("/accounts", json={"aid": aid, "name": f"test {aid}"}, headers=operator)
    assert r.status_code == 201, r.json
    r = admin.post(f"/accounts/{aid}/keys", json={"name": "tests", "scope": scope}, headers=operator)
    assert r.status_code == 201, r.json
    return Account(aid, r.json["key"], r.json["prefix"])
