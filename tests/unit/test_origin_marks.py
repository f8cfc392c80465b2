"""Origin marks (sysevents.jobs.origin): only sysevents' sealed publishes are trusted, and an edit through
the API reaches an email job only when the job names the edited job."""

from sysevents.events.model import new_event
from sysevents.jobs import origin
from sysevents.jobs.registry import job_from_dict
from sysevents.jobs.secrets import generate_key

KEY = generate_key()


def email_job(job_id, sources=None, verbs=("updated", "failed")):
    config = {"recipients": ["ops@example.com"], "system_event_multiple_types": list(verbs)}
    if sources is not None:
        config["system_event_sources"] = sources
    return job_from_dict({"workflow": "email_system_events", "config": config}, job_id=job_id, aid="a")


def webhook_job(job_id):
    config = {"webhook_url": "https://8.8.8.8/", "system_event_multiple_types": ["updated", "failed"]}
    return job_from_dict({"workflow": "webhook_system_events", "config": config}, job_id=job_id, aid="a")


def test_a_seal_vouches_for_the_exact_bytes_under_any_configured_key():
    data = new_event("a", "work", "j", "updated", **origin.mark("j", origin.Kind.LIFECYCLE)).to_json()
    attrs = origin.seal(data, KEY)
    assert origin.trusted(data, attrs, KEY)
    assert origin.trusted(data, attrs, f"{generate_key()},{KEY}")  # rotated: old seals still hold
    assert not origin.trusted(data + b" ", attrs, KEY)
    assert not origin.trusted(data, {}, KEY) and not origin.trusted(data, attrs, generate_key())
    assert origin.seal(data, None) == {} and not origin.trusted(data, attrs, None)


def test_an_edit_reaches_an_email_job_only_when_it_names_the_edited_job():
    everything = email_job("all")  # every subject type
    all_work = email_job("work", {"work": []})
    named = email_job("named", {"work": ["edited"]})
    hook = webhook_job("hook")
    edit = new_event("a", "work", "edited", "updated", **origin.mark("edited", origin.Kind.LIFECYCLE))
    kept, held = origin.deliverable(edit, [everything, all_work, named, hook])
    assert [j.id for j in kept] == ["named", "hook"]
    assert [j for j, _ in held] == ["all", "work"] and all("email jobs get edits only" in w for _, w in held)


def test_failures_and_backfill_events_still_reach_every_email_job_watching_work():
    jobs = [email_job("all"), email_job("work", {"work": []})]
    failed = new_event("a", "work", "export-1", "failed", **origin.mark("export-1", origin.Kind.LIFECYCLE))
    assert origin.deliverable(failed, jobs)[0] == jobs  # "email me when any export job fails"
    plain = new_event("a", "work", "edited", "updated")  # a producer's own work event, unmarked
    assert origin.deliverable(plain, jobs)[0] == jobs


def test_one_edit_among_a_thousand_email_jobs_sends_nothing():
    jobs = [email_job(f"j{i}", {"work": []}) for i in range(1000)]
    edit = new_event("a", "work", "j7", "updated", **origin.mark("j7", origin.Kind.LIFECYCLE))
    kept, held = origin.deliverable(edit, jobs)
    assert kept == [] and len(held) == 1000
