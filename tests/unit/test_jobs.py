import pytest

from sysevents.events.model import VERBS
from sysevents.jobs.model import InvalidJob, JobState, job_from_dict, job_to_dict
from sysevents.sinks.webhook.config import WebhookConfig

SEED = {
    "workflow": "webhook_system_events",
    "config": {
        "system_event_multiple_types": ["updated", "created", "failed"],
        "system_event_sources": {"work": ["work-id-1"]},
        "webhook_url": "https://hooks.example.com/x",
        "headers": {"Authorization": "Bearer t"},
        "json_template": '{"text": event.data.subject_id}',
    },
}


def test_seed_job_json_is_accepted_verbatim():
    job = job_from_dict(SEED, job_id="j1", aid="12")
    assert isinstance(job.config, WebhookConfig)
    assert job.filter.verbs == {"updated", "created", "failed"}
    assert job.filter.sources == {"work": frozenset({"work-id-1"})}
    assert job.state is JobState.ACTIVE and job.version == 1 and job.sink == "webhook"


def test_one_verb_form_and_empty_source_means_all():
    job = job_from_dict(
        {
            "workflow": "webhook_system_events",
            "config": {
                "system_event_type": "update",
                "system_event_sources": {"segment": []},
                "webhook_url": "https://h.example.com",
            },
        },
        job_id="j",
        aid="1",
    )
    assert job.filter.verbs == {"updated"} and job.filter.sources == {"segment": frozenset()}


def test_no_sources_means_every_subject_type():
    job = job_from_dict(
        {
            "workflow": "webhook_system_events",
            "config": {"system_event_type": "failed", "webhook_url": "https://h.example.com"},
        },
        job_id="j",
        aid="1",
    )
    assert job.filter.sources is None


def test_stored_form_round_trips():
    job = job_from_dict(SEED, job_id="j1", aid="12")
    assert job_from_dict(job_to_dict(job)) == job


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"workflow": "fax_system_events"},
            "workflow: unknown 'fax_system_events'; valid values: webhook_system_events",
        ),
        (
            {"config": {**SEED["config"], "system_event_multiple_types": ["exploded"]}},
            "config.system_event_multiple_types: unknown system_event_multiple_types entry 'exploded'; valid values",
        ),
        (
            {"config": {**SEED["config"], "system_event_sources": {"planet": []}}},
            "unknown system_event_sources key 'planet'; valid values: account",
        ),
        (
            {"config": {k: v for k, v in SEED["config"].items() if k != "system_event_multiple_types"}},
            "set system_event_type (one verb) or system_event_multiple_types",
        ),
        ({"config": {**SEED["config"], "webhook_url": "ftp://x"}}, "webhook_url must be an https:// URL"),
        (
            {"config": {**SEED["config"], "headers": {"Bad Header": "x"}}},
            "header name 'Bad Header' is not a valid",
        ),
        (
            {"config": {**SEED["config"], "headers": {"X": "a\r\nInjected: 1"}}},
            "header 'X' has an invalid value",
        ),
        ({"config": {**SEED["config"], "surprise": 1}}, "config.surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_jobs_are_refused_with_the_field_named(change, message):
    with pytest.raises(InvalidJob) as err:
        job_from_dict({**SEED, **change}, job_id="j", aid="1")
    assert message in err.value.reason


def test_a_filter_counts_what_it_puts_in_the_matching_index_and_one_job_holds_at_most_10000():
    def job(sources, verbs):
        doc = {"workflow": "webhook_system_events",
               "config": {"webhook_url": "https://example.com/h", "system_event_multiple_types": verbs}}  # fmt: skip
        if sources is not None:
            doc["config"]["system_event_sources"] = sources
        return job_from_dict(doc, job_id="j", aid="a")

    assert job(None, ["failed", "completed"]).filter.entries == 2  # every subject type: one entry per verb
    assert job({"work": [], "report": ["r1", "r2"]}, ["failed"]).filter.entries == 3
    ids = [f"w{i}" for i in range(1000)]
    assert job({"work": ids}, list(VERBS)).filter.entries == 9000
    assert job({"work": ids, "report": ids[:111]}, list(VERBS)).filter.entries == 9999
    with pytest.raises(InvalidJob) as err:
        job({"work": ids, "report": ids[:200]}, list(VERBS))  # 1,200 x 9
    assert "make 10,800 (subject, verb) combinations; the limit is 10,000 per job" in err.value.reason
