"""Per-account shares, offline: the windows of tasks due (pure), an account's deliveries in progress on an
instance, and BigQuery's quota refusal of an audit search as 429-with-Retry-After material (against a real
HTTP server that answers as BigQuery does when its quota is spent)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from sysevents.auditlog.schema import TableRef
from sysevents.auditlog.search import QUOTA_WAIT, search_audit
from sysevents.shares import AtShare
from sysevents.shares.instance import MAX_WAIT, InstanceShares
from sysevents.shares.tasks import HORIZON, plan


def test_waits_fill_a_window_up_to_the_cap_then_the_next_one():
    now = 1000.0
    due, at = plan({}, [1001.0, 1002.0, 1003.0, 1004.0, 1005.0], now, cap=2, window=10.0)
    assert due == {"100": 2, "101": 2, "102": 1}
    assert at == [1001.0, 1002.0, 1010.0, 1010.0, 1020.0]  # later, never dropped


def test_past_windows_are_dropped_so_a_lost_count_blocks_nothing_for_ever():
    # a count whose tasks were never put (a crash between counting and putting) is gone once its window passed
    due, at = plan({"90": 99, "100": 2}, [1005.0], now=1011.0, cap=2, window=10.0)
    assert due == {"101": 1}
    assert at == [1010.0]  # the start of its window, already past: put to go at once


def test_a_wait_later_than_the_horizon_is_put_at_its_time_uncounted():
    far = 1000.0 + HORIZON + 1
    due, at = plan({}, [far], now=1000.0, cap=1, window=10.0)
    assert (due, at) == ({}, [far])


def test_a_wait_already_due_counts_in_the_current_window():
    due, at = plan({"100": 1}, [900.0], now=1000.0, cap=1, window=10.0)
    assert due == {"100": 1, "101": 1}
    assert at == [1010.0]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_an_account_past_its_share_waits_and_another_goes_on():
    shares = InstanceShares(2, clock=Clock())
    assert shares.take("A") is None and shares.take("A") is None
    assert shares.take("A") is not None  # A's third waits
    assert shares.take("B") is None  # B is not held by A's share
    shares.done("A", 0.5)
    assert shares.take("A") is None  # a place freed: A's next goes
    assert shares.busy("A") == 2 and shares.busy("B") == 1


def test_refused_deliveries_come_back_one_service_interval_apart_bounded():
    clock = Clock()
    shares = InstanceShares(2, clock=clock)
    shares.take("A")
    shares.done("A", 1.0)  # A's deliveries take about a second here
    shares.take("A"), shares.take("A")
    waits = [shares.take("A") for _ in range(4)]
    assert waits == pytest.approx([0.5, 1.0, 1.5, 2.0])  # 1 s per delivery / 2 places
    for _ in range(200):
        last = shares.take("A")
    assert last == MAX_WAIT
    clock.t = 1000.0  # long after: a new refusal starts from now
    assert shares.take("A") == pytest.approx(0.5)


class QuotaSpent(BaseHTTPRequestHandler):
    """Answers every request as BigQuery does when the project's query quota is spent."""

    status, reason = 403, "quotaExceeded"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"code": self.status, "message": "Quota exceeded: too many queries",
                                     "errors": [{"reason": self.reason, "message": "too many"}]}}).encode()  # fmt: skip
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(params=[(403, "quotaExceeded"), (403, "rateLimitExceeded"), (429, "rateLimitExceeded")])
def bigquery_refusing(request):
    handler = type("Refusing", (QuotaSpent,), {"status": request.param[0], "reason": request.param[1]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = bigquery.Client(
        project="p",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{server.server_port}"},
    )
    yield client
    server.shutdown()
    server.server_close()


def test_a_search_bigquery_refuses_for_its_quota_is_at_share_with_a_wait(bigquery_refusing):
    with pytest.raises(AtShare) as err:
        search_audit("acct-1", client=bigquery_refusing, table=TableRef("p", "d", "t"), retry_deadline=0.3)
    assert err.value.retry_after == QUOTA_WAIT
    assert "quota" in str(err.value)


def test_a_403_that_is_a_permission_stays_an_error():
    handler = type("Denied", (QuotaSpent,), {"status": 403, "reason": "accessDenied"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = bigquery.Client(
            project="p",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{server.server_port}"},
        )
        with pytest.raises(gexc.Forbidden):
            search_audit("acct-1", client=client, table=TableRef("p", "d", "t"), retry_deadline=0.3)
    finally:
        server.shutdown()
        server.server_close()
