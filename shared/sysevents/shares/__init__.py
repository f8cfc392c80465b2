"""Fair shares per account of what every account shares: an instance's request threads, the delay queue,
BigQuery's query quota (audit searches) and replays.

- `instance.InstanceShares`: an account's deliveries in progress on one function instance, at most its
  share of the instance's threads; the next one waits on the delay queue (the envelope), at the pace the
  account's deliveries end here, and the instance's other threads serve the other accounts.
- `tasks.TaskWindows`: an account's delay-queue tasks due within each window of time, counted in Firestore
  (every instance sees them); a wait whose window is full is put in the next window with room (it waits
  a little longer, never lost). Counted by release time, nothing is ever decremented: a crash between
  counting and putting over-counts one window until that window has passed, and blocks nothing for ever.
- `accounts.AccountRate`: a per-account GCRA (audit searches per minute) in Firestore.
- `accounts.AccountLeases`: per-account leases on things that run a while (replays at once), each
  expiring on its own, so a crashed replay frees its place after the lease.

`AtShare` is the one answer of a cap: 429 with Retry-After on the admin API; in the pipeline a wait.
"""

from __future__ import annotations

import math


class AtShare(Exception):
    """The account is at its share of `what`: try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = max(1.0, math.ceil(retry_after))
