"""Admin API fixtures: the admin function in-process (functions-framework test client) on the session stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import functions_framework
import pytest

MAIN = Path(__file__).resolve().parents[2] / "functions" / "admin" / "main.py"


@dataclass
class Account:
    aid: str
    key: str
    prefix: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


@pytest.fixture(scope="session")
def admin(stack):
    """The admin function's Flask test client, its settings read from the stack's environment."""
    from sysevents import config, runtime

    config.settings.cache_clear()  # read the stack's SYSEVENTS_* (operator key hash, sealing keys)
    runtime._runtime = None
    return functions_framework.create_app("handle", str(MAIN), "http").test_client()


@pytest.fixture(scope="session")
def operator(stack) -> dict[str, str]:
    return {"X-API-Key": stack.operator_key}


def make_account(admin, operator, aid: str) -> Account:
    r = admin.post("/accounts", json={"aid": aid, "name": f"test {aid}"}, headers=operator)
    assert r.status_code == 201, r.json
    r = admin.post(f"/accounts/{aid}/keys", json={"name": "tests"}, headers=operator)
    assert r.status_code == 201, r.json
    return Account(aid, r.json["key"], r.json["prefix"])


@pytest.fixture
def account(admin, operator, aid) -> Account:
    return make_account(admin, operator, aid)


@pytest.fixture
def other(admin, operator, aid) -> Account:
    """A second account: its key must be refused on the first account's routes."""
    return make_account(admin, operator, aid + "-other")
