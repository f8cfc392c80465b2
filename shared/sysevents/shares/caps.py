"""Every per-account cap of a deployment, built from its Settings (the Runtime's `shares`)."""

from __future__ import annotations

from google.cloud import firestore

from sysevents.config import Settings
from sysevents.shares.accounts import AccountLeases, AccountRate
from sysevents.shares.instance import InstanceShares
from sysevents.shares.tasks import TaskWindows


class Caps:
    def __init__(self, client: firestore.Client, s: Settings):
        self.deliveries = InstanceShares(s.account_max_deliveries_in_flight)
        self.tasks = TaskWindows(client, s.shares_collection, s.account_max_tasks_due, s.account_task_window)
        self.audit = AccountRate(
            client, s.shares_collection, "audit searches", s.account_audit_searches_per_minute
        )
        self.replays = AccountLeases(
            client, s.shares_collection, "replays", s.account_max_replays, s.account_replay_lease
        )
