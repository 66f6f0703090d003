"""The repository explains itself: no pointer leaves it, every rule citation resolves (issue #11).

A reader of a clone has only what is tracked. These tests keep it that way:

- no tracked file points at a path outside the repository: a relative path that climbs above the
  repository root, the developers' private rules folder, a rules file by its old upper-case name,
  or the folder of source articles (URLs are not paths and are left alone);
- every rule number cited anywhere (``R2.4``, ``R10.5.1``, amendment ``A.3``, reading ``N12``)
  is a heading of ``docs/rules.md``: a citation resolves to its own heading, never to a parent,
  so a reader lands on the exact rule (the decision of issue #11);
- ``docs/rules.md`` keeps the section numbers of the rules it restates (R1-R11 with their numbered
  items, A.1-A.4), so citations written against those numbers stay valid;
- every relative link in the tracked Markdown files points to an existing file, and a ``#anchor``
  to a heading of that file (GitHub's heading slugs).
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "docs" / "rules.md"

# A rule citation: R1 ... R11 with any depth of numbered items, an amendment, a reading of a source.
CITATION = re.compile(r"\b(R\d{1,2}(?:\.\d+)*|A\.\d+|N\d{1,2})\b")
# A heading of docs/rules.md whose text starts with a rule number, e.g. "### R2.4 Closures".
NUMBERED_HEADING = re.compile(r"^#{1,6}\s+(R\d{1,2}(?:\.\d+)*|A\.\d+|N\d{1,2})\b")
# What a path leaving the repository looks like. Built from pieces so that this file does not
# match its own patterns.
UP = re.escape("..") + "/"
CLIMB = re.compile(r"(?<![\w./-])((?:" + UP + r")+[\w.@-][\w.@/-]*)")
PRIVATE = [
    re.compile(r"\b" + "shared" + "/"),  # the developers' private folder of rules and notes
    re.compile(r"\b" + "RULES" + r"(?:-notes)?\.md\b"),  # the rules by their private file names
    re.compile(r"\b" + "seeds" + "/"),  # the folder of source articles
]
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)

# The section numbers of the rules (R1-R11, their numbered items, the amendments): citations in
# code, tests and docs are written against these, so each must stay a heading of docs/rules.md.
EXPECTED = (
    ["R1", "R2"] + [f"R2.{i}" for i in range(1, 7)] + ["R3", "R4", "R5"] + [f"R5.{i}" for i in range(1, 7)]
    + ["R6"] + [f"R6.{i}" for i in range(1, 6)] + ["R7", "R8", "R9"] + [f"R9.{i}" for i in range(1, 11)]
    + [f"R9.2.{i}" for i in range(1, 7)] + [f"R9.3.{i}" for i in range(1, 5)]
    + [f"R9.4.{i}" for i in range(1, 10)] + [f"R9.6.{i}" for i in range(1, 5)]
    + ["R10"] + [f"R10.{i}" for i in range(1, 8)] + [f"R10.1.{i}" for i in range(1, 4)]
    + [f"R10.2.{i}" for i in range(1, 8)] + [f"R10.3.{i}" for i in range(1, 4)]
    + [f"R10.4.{i}" for i in range(1, 5)] + [f"R10.5.{i}" for i in range(1, 7)]
    + ["R11"] + [f"R11.{i}" for i in range(0, 9)] + [f"R11.3.{i}" for i in range(1, 7)]
    + [f"R11.4.{i}" for i in range(1, 4)] + [f"R11.5.{i}" for i in range(1, 4)]
    + [f"R11.6.{i}" for i in range(1, 4)] + [f"A.{i}" for i in range(1, 5)]
    + [f"N{i}" for i in range(1, 46)]
)


@cache
def tracked_texts() -> dict[str, str]:
    """Every tracked file that is UTF-8 text, by its path relative to the repository root."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    texts = {}
    for name in names.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        try:
            texts[name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary: nothing a reader follows
    return texts


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown file's headings (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", markdown).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def rule_headings() -> set[str]:
    return {m.group(1) for line in RULES.read_text(encoding="utf-8").splitlines()
            if (m := NUMBERED_HEADING.match(line))}


def test_no_tracked_file_points_outside_the_repository() -> None:
    """Issue #11: a clone must be self-contained; the rules live in docs/rules.md, not beside it."""
    found = []
    for name, text in tracked_texts().items():
        body = URL.sub("", text)
        here = (ROOT / name).parent
        for lineno, line in enumerate(body.splitlines(), 1):
            for m in CLIMB.finditer(line):
                target = (here / m.group(1)).resolve()
                if not target.is_relative_to(ROOT):
                    found.append(f"{name}:{lineno}: {m.group(1)} leaves the repository")
            for pattern in PRIVATE:
                if m := pattern.search(line):
                    found.append(f"{name}:{lineno}: {m.group(0)!r} is not in the repository: {line.strip()[:100]}")
    assert not found, "pointers outside the repository (cite docs/rules.md instead):\n" + "\n".join(found)


def test_rules_document_keeps_the_section_numbers() -> None:
    """Issue #11: docs/rules.md has a heading for every rule number of R1-R11, A.1-A.4 and N1-N45."""
    assert RULES.is_file(), "docs/rules.md is missing"
    missing = [n for n in EXPECTED if n not in rule_headings()]
    assert not missing, f"docs/rules.md has no heading for {missing}"


def test_every_cited_rule_number_is_a_heading_of_the_rules() -> None:
    """Issue #11: each R-number, amendment and reading cited in a tracked file resolves to a heading of
    docs/rules.md, exactly: a deeper number never falls back to its parent's heading."""
    assert RULES.is_file(), "docs/rules.md is missing"
    headings = rule_headings()
    unresolved: dict[str, list[str]] = {}
    for name, text in tracked_texts().items():
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in CITATION.finditer(line):
                if m.group(1) not in headings:
                    unresolved.setdefault(m.group(1), []).append(f"{name}:{lineno}")
    assert not unresolved, "citations with no heading in docs/rules.md:\n" + "\n".join(
        f"{number}: {', '.join(places[:5])}{' ...' if len(places) > 5 else ''}"
        for number, places in sorted(unresolved.items()))


def test_relative_markdown_links_resolve() -> None:
    """Issue #11: a link in README.md, docs/ or any tracked Markdown file reaches a file that exists,
    and its #anchor a heading of that file."""
    broken = []
    texts = tracked_texts()
    for name, text in texts.items():
        if not name.endswith(".md"):
            continue
        for m in LINK.finditer(FENCE.sub("", text)):
            target = m.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto: ...
            path, _, anchor = target.partition("#")
            file = (ROOT / name).parent / path if path else ROOT / name
            if not file.resolve().is_relative_to(ROOT) or not file.exists():
                broken.append(f"{name}: {target} (no such file)")
                continue
            if anchor and file.suffix == ".md":
                if anchor not in anchors(file.read_text(encoding="utf-8")):
                    broken.append(f"{name}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_slugs_follow_github() -> None:
    """The anchor check is only as good as its slugs: GitHub's rules on a few known headings."""
    assert slug("R2.4 Closures") == "r24-closures"
    assert slug("### `chatsla audit`".lstrip("# ")) == "chatsla-audit"
    assert slug("Time and order (R6)") == "time-and-order-r6"
    assert slug("A.3 R7: every policy has a model") == "a3-r7-every-policy-has-a-model"
    assert anchors("# A\n## A\n```\n# B\n```\n") == {"a", "a-1"}
