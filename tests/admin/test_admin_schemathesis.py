"""Property-based: requests generated from the admin API's own /openapi.json (schemathesis) never get a
5xx. Every malformed input is a 4xx naming what is wrong.

Run in-process against the admin function's WSGI app on the session stack, with the operator key (so
generated account ids and job ids reach the handlers, not just the 403 of another account). Bounded:
a fixed number of derandomized examples per operation (about 25 operations), a minute or two here.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.integration
EXAMPLES = 120  # per operation


def operations(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_no_generated_request_gets_a_server_error(admin, operator):
    errors: list[str] = []
    statuses: dict[int, int] = {}
    tried = 0

    def check(op):
        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            nonlocal tried
            tried += 1
            response = case.call(headers=operator)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                errors.append(f"{op.label}: {response.status_code} for {case.path_parameters} "
                              f"{case.query} {str(case.body)[:200]}: {response.text[:300]}")  # fmt: skip

        run()

    for op in operations(admin.application):
        check(op)
    # Not vacuous: the generator generated, and requests reached the handlers both ways.
    assert tried >= 1000 and statuses.get(200, 0) > 50 and statuses.get(400, 0) > 50, statuses
    assert errors == []
