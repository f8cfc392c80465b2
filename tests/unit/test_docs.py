"""README.md and docs/*.md: links, anchors, and the commands they name, checked offline from the files alone.

- every relative link points to a file of the repository, and every `#anchor` (in the page or in another
  page) is a heading of its target, spelled as GitHub spells heading anchors;
- absolute links are http(s) and well formed (never fetched);
- every docs page is reachable from README.md by links;
- every `make <target>` in code (inline or a block) is a target of the Makefile;
- every `sysevents <command> [<subcommand>]` in code is a command of the CLI, read from its source (the
  click decorators of the package `[project.scripts]` names), not by importing it.
"""

from __future__ import annotations

import ast
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]*)>")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
_MAKE = re.compile(r"(?<![\w.-])make[ \t]+([A-Za-z][\w-]*)")
_SYSEVENTS = re.compile(
    r"(?:^|(?<=[\s(|/]))sysevents[ \t]+([a-z][a-z0-9-]*)(?:[ \t]+([a-z][a-z0-9|-]*))?", re.MULTILINE
)


@dataclass
class Page:
    path: Path
    prose: str  # the text outside code, code spans replaced by a placeholder
    code: list[str] = field(default_factory=list)  # each code span and each fenced block
    anchors: set[str] = field(default_factory=set)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return text.replace(" ", "-")


@cache
def parse(path: Path) -> Page:
    """Split a page into prose and code, and collect its heading anchors (numbered as GitHub numbers repeats)."""
    prose_lines: list[str] = []
    page = Page(path, "")
    fence: str | None = None
    block: list[str] = []
    seen: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        opener = _FENCE.match(line)
        if fence is None and opener:
            fence, block = opener.group(1), []
            prose_lines.append("")
            continue
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                page.code.append("\n".join(block))
                fence = None
            else:
                block.append(line)
            continue
        prose_lines.append(line)
        if heading := _HEADING.match(line):
            base = slug(heading.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            page.anchors.add(base if n == 0 else f"{base}-{n}")
    if fence is not None:
        page.code.append("\n".join(block))
    paragraphs = "\n".join(prose_lines).split("\n\n")  # a code span never crosses a blank line
    kept = []
    for paragraph in paragraphs:
        page.code.extend(m.group(2) for m in _CODE_SPAN.finditer(paragraph))
        kept.append(_CODE_SPAN.sub("code", paragraph))
    page.prose = "\n\n".join(kept)
    page.anchors |= set(_HTML_ANCHOR.findall(page.prose))
    return page


def links(page: Page) -> list[str]:
    return (
        [m.group(2) for m in _LINK.finditer(page.prose)]
        + _REF_DEF.findall(page.prose)
        + _AUTOLINK.findall(page.prose)
    )


def check_link(page: Path, target: str, root: Path = REPO) -> str | None:
    """What is wrong with one link of a page, or None."""
    if not target:
        return "empty link"
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+|localhost", host) or re.search(r"\s", target):
            return f"malformed URL {target!r}"
        return None
    if parts.scheme == "mailto":
        return None if "@" in parts.path else f"malformed mailto {target!r}"
    if parts.scheme or parts.netloc:
        return f"unexpected scheme in {target!r}"
    if parts.path.startswith("/"):
        return f"{target!r}: absolute paths resolve differently on GitHub and on disk; use a relative one"
    dest = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if not dest.is_relative_to(root):
        return f"{target!r} points outside the repository"
    if not dest.exists():
        return f"{target!r}: no such file {dest.relative_to(root)}"
    if parts.fragment:
        if dest.suffix != ".md":
            return f"{target!r}: an anchor into a file that is not a page"
        if unquote(parts.fragment) not in parse(dest).anchors:
            return f"{target!r}: no heading with anchor #{parts.fragment} in {dest.relative_to(root)}"
    return None


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_and_anchors_resolve(path: Path) -> None:
    page = parse(path)
    broken = [why for target in links(page) if (why := check_link(path, target))]
    assert not broken, f"{path.relative_to(REPO)} has broken links:\n  " + "\n  ".join(broken)


def test_every_docs_page_is_reachable_from_readme() -> None:
    reached, todo = {README}, [README]
    while todo:
        page = todo.pop()
        for target in links(parse(page)):
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not parts.path.endswith(".md"):
                continue
            dest = (page.parent / unquote(parts.path)).resolve()
            if dest.exists() and dest not in reached:
                reached.add(dest)
                todo.append(dest)
    unreached = [str(p.relative_to(REPO)) for p in PAGES if p not in reached]
    assert not unreached, f"docs pages no link from README.md leads to: {unreached}"


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set()
    for m in re.finditer(r"^([^\s#$:=][^:=]*?)\s*::?(?!=)", text, re.MULTILINE):
        targets.update(t for t in m.group(1).split() if not t.startswith((".", "$")))
    return targets


def test_make_targets_named_in_the_docs_exist() -> None:
    targets = make_targets()
    assert {"dev", "test"} <= targets, "the Makefile parser found no dev and test targets"
    missing = sorted(
        f"{path.relative_to(REPO)}: make {name}"
        for path in PAGES
        for code in parse(path).code
        for name in _MAKE.findall(code)
        if name not in targets
    )
    assert not missing, "make targets the Makefile does not have:\n  " + "\n  ".join(missing)


def _decorator_parts(dec: ast.expr) -> tuple[str | None, str, str | None] | None:
    """(object, method, explicit name) of a `@obj.command("name")`-like decorator."""
    call = dec if isinstance(dec, ast.Call) else None
    func = call.func if call else dec
    if not isinstance(func, ast.Attribute) or func.attr not in ("command", "group"):
        return None
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    name = None
    if call and call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        name = call.args[0].value
    for kw in call.keywords if call else ():
        if kw.arg == "name" and isinstance(kw.value, ast.Constant):
            name = kw.value.value
    return owner, func.attr, name


@cache
def cli_commands() -> dict[str, set[str]]:
    """Top-level command -> its subcommands, from the click decorators of the CLI package's source.

    The root is the group `[project.scripts] sysevents` names; `@root.command` functions are its commands,
    and so is every other `@click.group` / `@click.command` (they are added with `add_command`)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, root = pyproject["project"]["scripts"]["sysevents"].partition(":")
    base = REPO / "shared" / Path(*module.split("."))
    files = sorted(base.glob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
    groups: dict[str, str] = {}  # python name of a group -> its command name
    attached: list[tuple[str, str]] = []  # (python name of the owning group, command name)
    standalone: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                parts = _decorator_parts(dec)
                if parts is None:
                    continue
                owner, kind, name = parts
                name = name or node.name.replace("_", "-")
                if kind == "group":
                    groups[node.name] = name
                if owner == "click":
                    standalone.add(name)
                elif owner:
                    attached.append((owner, name))
    tree: dict[str, set[str]] = {name: set() for name in standalone if name != groups.get(root)}
    for owner, name in attached:
        if owner == root:
            tree.setdefault(name, set())
        elif owner in groups:
            tree.setdefault(groups[owner], set()).add(name)
    return tree


def test_sysevents_commands_named_in_the_docs_exist() -> None:
    tree = cli_commands()
    assert {"dev", "publish", "jobs"} <= tree.keys(), f"the CLI reader found too little: {sorted(tree)}"
    unknown = []
    for path in PAGES:
        for code in parse(path).code:
            for command, sub in _SYSEVENTS.findall(code):
                if command not in tree:
                    unknown.append(f"{path.relative_to(REPO)}: sysevents {command}")
                elif tree[command] and sub:
                    unknown += [
                        f"{path.relative_to(REPO)}: sysevents {command} {s}"
                        for s in sub.split("|")
                        if s and s not in tree[command]
                    ]
    assert not unknown, "commands the sysevents CLI does not have:\n  " + "\n  ".join(sorted(unknown))


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        (
            "Job cache: jobs in memory, never more than X old",
            "job-cache-jobs-in-memory-never-more-than-x-old",
        ),
        ("The admin API and `sysevents jobs`", "the-admin-api-and-sysevents-jobs"),
        ("Benchmark: sysevents vs Prometheus Alertmanager", "benchmark-sysevents-vs-prometheus-alertmanager"),
        ("The hand-over: no gap, no duplicate", "the-hand-over-no-gap-no-duplicate"),
        ("Sources (read 2026-12-01, from copies)", "sources-read-2026-12-01-from-copies"),
        ("What each count means (per_million)", "what-each-count-means-per_million"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    """A broken file link, a missing anchor and a malformed URL are reported; repeats of a heading are numbered."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Same\n\n## Same\n\n```\n## not a heading\n```\n")
    page = tmp_path / "README.md"
    page.write_text("# Top\n")
    assert parse(tmp_path / "docs" / "a.md").anchors == {"a", "same", "same-1"}
    assert check_link(page, "docs/a.md#same-1", tmp_path) is None
    assert check_link(page, "docs/a.md", tmp_path) is None
    assert "no such file" in check_link(page, "docs/b.md", tmp_path)
    assert "no heading" in check_link(page, "docs/a.md#not-a-heading", tmp_path)
    assert "no heading" in check_link(page, "#nowhere", tmp_path)
    assert "malformed" in check_link(page, "https://exa mple.com/x", tmp_path)
    assert "malformed" in check_link(page, "https:///path", tmp_path)
    assert check_link(page, "https://example.com/a?b=c#d", tmp_path) is None
