"""The in-instance pacer of rate-limited jobs: sends of one job spaced by its interval, others untouched."""

from __future__ import annotations

from sysevents.delivery.ratelimit import MAX_PACE, PACE_MARGIN, Pacer, Rate


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_send_closer_than_the_interval_waits_out_the_difference():
    clock = Clock()
    pacer = Pacer(sleep=clock.sleep, clock=clock)
    one = Rate(1.0)
    assert pacer.pace("job-a", one) == 0.0  # the first send of a job never waits
    clock.now += 0.85  # released early relative to the previous send
    waited = pacer.pace("job-a", one)
    assert abs(waited - (PACE_MARGIN - 0.85)) < 1e-9 and clock.slept == [waited]
    clock.now += 1.5  # well after: no wait
    assert pacer.pace("job-a", one) == 0.0


def test_other_jobs_bursts_and_long_gaps_are_not_paced_beyond_the_bound():
    clock = Clock()
    pacer = Pacer(sleep=clock.sleep, clock=clock)
    assert pacer.pace("job-a", Rate(0.1)) == 0.0
    assert pacer.pace("job-b", Rate(0.1)) == 0.0  # another job: its own spacing
    assert pacer.pace("job-a", Rate(0.1)) is None  # a 10 s wait is the delay queue's: nothing claimed
    assert abs(pacer.later("job-a", Rate(0.1)) - 10 * PACE_MARGIN) < 1e-9
    clock.now += MAX_PACE + 10 * PACE_MARGIN - 10 * PACE_MARGIN  # half a second on: still too early
    assert pacer.pace("job-a", Rate(0.1)) is None
    assert pacer.pace("job-c", Rate(5.0, burst=5)) == 0.0
    assert pacer.pace("job-c", Rate(5.0, burst=5)) == 0.0  # a burst may go at once
