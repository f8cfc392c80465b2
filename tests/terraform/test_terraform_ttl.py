"""Every Firestore collection group the library writes `expire_at` to has a TTL policy in Terraform.

The library's writes of `expire_at` are found in its source (every dict literal with that key); each is
mapped below to the collection group it lands in. A new write that is not mapped fails here, so whoever
adds one also says where it goes -- and then Terraform must expire it (firestore.tf).
"""

from __future__ import annotations

import ast
import re

import pytest
from tfhelpers import LIBRARY_DIR, TF_DIR, one, parse, root_blocks

# (module, enclosing function) -> (collection group, how the code names it)
WRITES = {
    ("delivery/accounting.py", "record"): ("attempts", r'collection\("attempts"\)'),
    ("delivery/accounting.py", "dead_letter"): ("dead_letters", r'collection\("dead_letters"\)'),
    ("transport/quarantine.py", "record"): ("quarantine", r'COLLECTION = "quarantine"'),
    ("alerts/store.py", "_seen"): ("alert_seen", r'prefix \+ "seen"'),
    ("alerts/outbox.py", "outbox_entry"): ("alert_outbox", r'prefix \+ "outbox"'),
    ("alerts/store.py", "firing_doc"): ("alert_firing", r'prefix \+ "firing"'),
    ("alerts/condstore.py", "count_event"): ("alert_counts", r'prefix \+ "counts"'),
    ("alerts/condstore.py", "_stamped"): ("alert_conditions", r'prefix \+ "conditions"'),
    ("sinks/email/quota.py", "take"): ("email_quota", r'prefix \+ "quota"'),
}


def expire_at_writes() -> set[tuple[str, str]]:
    """(module, function or method) of every dict literal with an "expire_at" key in the library
    (a dict in a nested function counts for the function or method that defines it)."""
    found = set()
    for path in sorted(LIBRARY_DIR.rglob("*.py")):
        rel = path.relative_to(LIBRARY_DIR).as_posix()
        tree = ast.parse(path.read_text())
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        defs += [m for c in tree.body if isinstance(c, ast.ClassDef) for m in c.body]
        for fn in defs:
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Dict) and any(
                    isinstance(k, ast.Constant) and k.value == "expire_at" for k in node.keys
                ):
                    found.add((rel, fn.name))
    return found


def ttl_groups() -> dict[str, dict]:
    res = root_blocks("resource")[("google_firestore_field", "ttl")]
    [groups] = [
        b["ttl_collection_groups"]
        for b in parse(TF_DIR / "firestore.tf")["locals"]
        if "ttl_collection_groups" in b
    ]
    return {"resource": res, "groups": groups}


def test_every_expire_at_write_is_mapped_to_its_collection_group():
    writes = expire_at_writes()
    assert writes, "no write of expire_at found: the search is broken"
    unmapped = writes - set(WRITES)
    assert not unmapped, f"writes of expire_at with no collection group in WRITES: {sorted(unmapped)}"
    for (module, _), (_, naming) in WRITES.items():
        assert re.search(naming, (LIBRARY_DIR / module).read_text()), (module, naming)


@pytest.mark.parametrize("group", sorted({g for g, _ in WRITES.values()}))
def test_each_collection_group_written_with_expire_at_has_a_ttl_policy(group):
    assert group in ttl_groups()["groups"], f"{group}: documents with expire_at but no TTL policy"


def test_ttl_policies_are_on_expire_at_without_indexes():
    res = ttl_groups()["resource"]
    assert res["for_each"] == "${local.ttl_collection_groups}"
    assert res["field"] == "expire_at"
    assert res["collection"] == "${each.key}"
    assert one(res, "ttl_config") == {}
    assert one(res, "index_config") == {}  # no single-field indexes on a monotonically growing time


def test_no_ttl_policy_for_a_collection_the_code_does_not_expire():
    assert set(ttl_groups()["groups"]) == {g for g, _ in WRITES.values()}
