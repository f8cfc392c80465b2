"""The order a backfill tick takes jobs in: accounts in turn, so one account's many backfills cannot take
every tick's budget from the others."""

import random

from helpers import webhook_job

from sysevents.backfill.ticks import fair_order


def job(aid: str, job_id: str):
    return webhook_job(job_id, aid, "https://example.com/h")


def test_each_account_gets_one_turn_per_round_whatever_its_number_of_backfills():
    hostile = [job("many", f"j{i}") for i in range(50)]
    others = [job(f"acct{i}", "only") for i in range(3)]
    for seed in range(20):
        order = fair_order(hostile + others, random.Random(seed))
        assert sorted((j.aid, j.id) for j in order) == sorted((j.aid, j.id) for j in hostile + others)
        first_round = order[:4]
        assert {j.aid for j in first_round} == {"many", "acct0", "acct1", "acct2"}  # all four go first
        assert all(j.aid == "many" for j in order[4:])


def test_the_order_changes_from_tick_to_tick():
    jobs = [job(f"a{i}", "x") for i in range(6)]
    orders = {tuple(j.aid for j in fair_order(jobs, random.Random(seed))) for seed in range(10)}
    assert len(orders) > 1
