"""Admin API fixtures: the admin function in-process (functions-framework test client) on the session stack."""

from __future__ import annotations

from pathlib import Path

import functions_framework
import pytest
from admin_helpers import Account, make_account

MAIN = Path(__file__).resolve().parents[2] / "functions" / "admin" / "main.py"


@pytest.fixture(scope="session")
def admin(stack):
    """The admin function's Flask test client, its settings read from the stack's environment."""
    from sysevents import runtime

    runtime.reset()  # read the stack's SYSEVENTS_* (operator key hash, sealing keys)
    return functions_framework.create_app("handle", str(MAIN), "http").test_client()


@pytest.fixture(scope="session")
def operator(stack) -> dict[str, str]:
    return {"X-API-Key": stack.operator_key}


@pytest.fixture
def account(admin, operator, aid) -> Account:
    return make_account(admin, operator, aid)


@pytest.fixture
def other(admin, operator, aid) -> Account:
    """A second account: its key must be refused on the first account's routes."""
    return make_account(admin, operator, aid + "-other")
