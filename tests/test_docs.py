"""The repository stands alone: no citation of files outside it, no issue numbers, no dead links.

A clone has only its tracked files, so a reference to a design note or paper kept next to the
repository, or to an issue number of a tracker the reader cannot see, is a dead link. The design
lives in docs/design.md; every relative link and anchor of the README and docs/ must resolve,
and so must every ``docs/design.md#<anchor>`` cited from code.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Written so that this file does not match itself.
FORBIDDEN = {
    "the old design note outside the repository": re.compile(r"\bDESIGN\.md"),
    "a path outside the repository": re.compile(r"\.\./shared\b"),
    "an issue number": re.compile(r"\bissues? ?#?\d", re.IGNORECASE),
}
# Another project's issue ("pytorch#102038", a github.com URL) is fine: the reader can follow it.
OTHER_PROJECT = re.compile(r"github\.com/|\b[\w.-]+/[\w.-]+#\d|\b\w+#\d")

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
CITED_ANCHOR = re.compile(r"docs/design\.md#([\w-]+)")


@cache
def _git_files() -> tuple[Path, ...] | str:
    # Tracked files plus new ones not ignored: what the next commit can hold, so that a new
    # document counts before `git add`.
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    try:
        out = subprocess.run(command, cwd=ROOT, capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"needs a git checkout of the repository: {e}"
    files = tuple(ROOT / name for name in out.stdout.decode().split("\0") if name)
    if ROOT / "README.md" not in files:  # a copy of tests/ outside the checkout (make test-lower)
        return "needs a git checkout of the repository"
    return files


def tracked_files() -> tuple[Path, ...]:
    files = _git_files()
    if isinstance(files, str):
        pytest.skip(files)
    return files


@cache
def text_of(path: Path) -> str | None:
    """The file's text, or None for binary files (a NUL byte or not UTF-8) and missing ones."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def markdown_files() -> list[Path]:
    return [p for p in tracked_files()
            if p.suffix == ".md" and (p == ROOT / "README.md" or ROOT / "docs" in p.parents)]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: rendered text, lower case, punctuation dropped
    (letters, digits, ``_``, ``-`` and spaces stay), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@cache
def anchors_of(path: Path) -> frozenset[str]:
    """Every anchor the headings of a markdown file produce (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in HEADING.findall(FENCE.sub("", text_of(path) or "")):
        base = github_anchor(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    return frozenset(anchors)


def test_no_reference_leaves_the_repository():
    problems = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if pattern.search(line) and not (what == "an issue number" and OTHER_PROJECT.search(line)):
                    problems.append(f"{path.relative_to(ROOT)}:{lineno}: {what}: {line.strip()[:120]}")
    assert not problems, "say what is meant instead (the design is docs/design.md):\n" + "\n".join(problems)


def _check_target(source: Path, target: str) -> str | None:
    """Why the link ``target`` written in ``source`` is dead, or None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
        return None
    path_part, _, anchor = target.partition("#")
    dest = source if not path_part else (source.parent / path_part).resolve()
    if ROOT not in dest.parents and dest != ROOT:
        return f"{target} points outside the repository"
    if not dest.exists():
        return f"{target}: no such file"
    if dest.is_file() and dest not in tracked_files():
        return f"{target}: not in the repository (untracked and ignored)"
    if anchor:
        if dest.suffix != ".md":
            return f"{target}: an anchor into a file that is not markdown"
        if anchor.lower() not in anchors_of(dest):
            return f"{target}: no heading in {dest.relative_to(ROOT)} gives #{anchor}"
    return None


def test_relative_links_in_readme_and_docs_resolve():
    problems = []
    for path in markdown_files():
        text = CODE_SPAN.sub("", FENCE.sub("", text_of(path) or ""))
        for target in LINK.findall(text):
            why = _check_target(path, target)
            if why:
                problems.append(f"{path.relative_to(ROOT)}: {why}")
    assert not problems, "\n".join(problems)


def test_cited_design_anchors_exist():
    design = ROOT / "docs" / "design.md"
    assert design in tracked_files(), "docs/design.md is the design that code and docs cite"
    anchors = anchors_of(design)
    problems = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for anchor in CITED_ANCHOR.findall(line):
                if anchor not in anchors:
                    problems.append(f"{path.relative_to(ROOT)}:{lineno}: docs/design.md#{anchor} has no heading")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Installing, and the supported versions", "installing-and-the-supported-versions"),
    ("The `cuda` backend", "the-cuda-backend"),
    ("Adding an op, adding a backend", "adding-an-op-adding-a-backend"),
    ("Capturing only part of a run: `--capture-range=nvtx`", "capturing-only-part-of-a-run---capture-rangenvtx"),
    ("EmoBench: data → prompts → train → eval", "emobench-data--prompts--train--eval"),
])
def test_github_anchor(heading, anchor):
    assert github_anchor(heading) == anchor
