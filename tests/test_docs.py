"""The front door: a README that fits on a page and keeps the two set-up commands, and links that lead somewhere.

``mkdocs build --strict`` (in CI) checks the links inside docs/; README.md is outside the site, so its links
are checked here, and docs/'s too, so that a broken one fails the test run before the docs build.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 150
# [text](target) and ![alt](target); code spans and fenced blocks are removed before matching
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _hooks():
    """docs/hooks.py: the pages the site makes from files outside docs/, and those written elsewhere."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def relative_links(markdown: str) -> list[str]:
    """Link targets that point into the repository (no URL, no bare #anchor), without their #anchor."""
    text = CODE_SPAN.sub("", FENCE.sub("", markdown))
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t.split("#", 1)[0] for t in targets
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE) and not t.startswith("#")]


def broken_links(page: Path) -> list[str]:
    hooks = _hooks()
    site_pages = set(hooks.generated_pages())
    broken = []
    for target in relative_links(page.read_text()):
        path = (page.parent / target).resolve()
        if path.exists():
            continue
        inside_docs = path.is_relative_to(DOCS)
        if inside_docs and path.relative_to(DOCS).as_posix() in site_pages:
            continue  # made by docs/hooks.py at build time
        broken.append(target)
    return broken


def test_readme_fits_on_a_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move guides to docs/ and machine-specific "
        "tables to benchmarks/RESULTS.md")


def test_readme_keeps_the_two_setup_commands():
    text = README.read_text()
    assert "pip install -e . && python train.py" in text
    assert 'pip install -e ".[test]" && pytest' in text


@pytest.mark.parametrize("page", [README, *sorted(DOCS.rglob("*.md"))], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == [], f"{page.relative_to(ROOT)} links to missing files"


def test_a_broken_link_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md) [gone](missing.md#part) `[code](nowhere.md)` [web](https://example.org/x.md)\n"
                    "```\n[fenced](nowhere.md)\n```\n")
    assert broken_links(page) == ["missing.md"]


def test_every_public_name_of_the_package_is_in_the_api_reference():
    import restore

    api = (DOCS / "reference" / "api.md").read_text()
    documented = set(re.findall(r"^\s+- (\w+)$", api, re.MULTILINE)) | set(re.findall(r"`restore\.(\w+)`", api))
    missing = [name for name in restore.__all__ if name != "__version__" and name not in documented]
    assert not missing, f"restore.__all__ names missing from docs/reference/api.md: {missing}"
