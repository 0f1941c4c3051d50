"""Every relative link of the documentation resolves: the file exists and a ``#heading`` anchor names a heading.

Pages: README.md, DEVELOPING.md, docs/*.md, the recipes' README.md and RESULTS.md. Links to the web are not
followed. Anchors follow GitHub's rule (lower case, punctuation dropped, spaces -> hyphens, ``-N`` for repeats).
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted({REPO / "README.md", REPO / "DEVELOPING.md", *REPO.glob("docs/*.md"), *REPO.glob("egs/*/README.md"),
                *REPO.glob("egs/*/RESULTS.md")})
# pages that other changes are writing: a link to one is accepted while the page does not exist yet (once it
# does, its anchors are checked like any other page's)
PENDING = {REPO / "docs" / "using_a_model.md", REPO / "docs" / "demo.md", REPO / "docs" / "reliability.md",
           REPO / "docs" / "figures" / "demo.png"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def slug(heading):
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page):
    seen, out = {}, set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        count = seen.get(base, 0)
        out.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return out


def links(page):
    """``(line number, target)`` of every link outside code blocks and inline code."""
    out, in_code = [], False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        for match in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            out.append((number, match.group(1) or match.group(2)))
    return out


def broken_links(page):
    problems = []
    for number, target in links(page):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            if dest not in PENDING:
                problems.append(f"{page.relative_to(REPO)}:{number}: {target} (no such file)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{page.relative_to(REPO)}:{number}: {target} (no heading #{anchor} in "
                            f"{dest.relative_to(REPO)})")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_links_resolve(page):
    assert broken_links(page) == []


def test_the_checker_finds_a_broken_file_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Title\n\n## Corpora (`db.sh`)\n\n## Corpora (`db.sh`)\n")
    page.write_text("[a](other.md#corpora-dbsh) [b](other.md#corpora-dbsh-1) [c](other.md#nope) [d](missing.md)\n"
                    "```\n[e](not-checked.md)\n```\n![f](fig.png) `[g](inline.md)` [h](https://example.org/x)\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert broken_links(page) == ["page.md:1: other.md#nope (no heading #nope in other.md)",
                                      "page.md:1: missing.md (no such file)", "page.md:5: fig.png (no such file)"]
    finally:
        REPO = saved


def test_the_documentation_figures_are_drawn_by_code(tmp_path):
    """docs/figures/model.png and stages.png come from tools/draw_figures.py (run here into a temporary folder)."""
    result = subprocess.run([sys.executable, str(REPO / "tools" / "draw_figures.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    for name in ("model.png", "stages.png"):
        drawn, committed = tmp_path / name, REPO / "docs" / "figures" / name
        assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and committed.is_file()
        # same picture size as the committed one (a changed drawing is committed with the script)
        assert drawn.read_bytes()[16:24] == committed.read_bytes()[16:24]
