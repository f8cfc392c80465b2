import json

import pytest

from sysevents.events.model import new_event
from sysevents.local.demo import SLACK_TEMPLATE
from sysevents.templates import SAMPLE_EVENT, TemplateError, check, render


def test_seed_slack_template_works_verbatim():
    ev = new_event("12", "work", "work-id-1", "failed", notes="disk full").to_cloudevent()
    assert json.loads(render(SLACK_TEMPLATE, ev)) == {
        "text": "Alert notification: disk full. For more info go to: "
        "https://activate.getlytics.com/data/integrations/work/work-id-1?aid=12"
    }
    ev = new_event("12", "work", "work-id-1", "failed").to_cloudevent()
    assert json.loads(render(SLACK_TEMPLATE, ev))["text"].startswith("Alert notification: A work failed.")


def test_no_template_sends_the_event():
    assert json.loads(render(None, SAMPLE_EVENT)) == SAMPLE_EVENT
    assert json.loads(render("  ", SAMPLE_EVENT)) == SAMPLE_EVENT


def test_imports_are_refused():
    for src in ('importstr "/etc/passwd"', 'import "x.libsonnet"', 'importbin "/etc/hostname"'):
        with pytest.raises(TemplateError, match="imports are not allowed"):
            check(src)


def test_errors_name_the_template_line_and_column():
    with pytest.raises(TemplateError, match=r"runtime error: boom\n\s+json_template:2:6-19"):
        check('{\n  a: error "boom"\n}')
    with pytest.raises(TemplateError, match=r"syntax error: .*\n\s+json_template:1:5"):
        check("{a: }")
    with pytest.raises(TemplateError, match="no such field: nope"):
        check('{"a": event.data.nope}')


def test_runaway_recursion_is_bounded():
    with pytest.raises(TemplateError, match="stack overflow"):
        check("local f(x) = f(x + 1); f(0)")


def test_output_size_is_capped():
    with pytest.raises(TemplateError, match="template output is"):
        render('{"x": std.repeat("a", 5000)}', SAMPLE_EVENT, max_output_bytes=1000)
