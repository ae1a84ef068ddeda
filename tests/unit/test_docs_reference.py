"""Cheap checks of the docs site that need no mkdocs: every public name has a reference
entry, the navigation names only pages that exist (and every page), and the changelog page
includes CHANGELOG.md instead of copying it."""

from __future__ import annotations

import pathlib
import re

import osiiso_mp

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = sorted((DOCS / "reference").glob("*.md"))


def _identifiers() -> list[str]:
    """The identifiers of the ``::: identifier`` blocks of the reference pages."""
    found: list[str] = []
    for page in REFERENCE:
        found += re.findall(r"^::: (\S+)\s*$", page.read_text(), re.M)
    return found


def _nav_pages() -> list[str]:
    """The Markdown files named in mkdocs.yml's ``nav:`` section, in order."""
    text = (ROOT / "mkdocs.yml").read_text()
    match = re.search(r"^nav:\n(.*?)(?=^\S)", text, re.M | re.S)
    assert match is not None, "mkdocs.yml has no nav: section"
    return re.findall(r":\s*(\S+\.md)\s*$", match.group(1), re.M)


def test_every_public_name_has_a_reference_entry() -> None:
    documented = _identifiers()
    missing = [n for n in osiiso_mp.__all__ if f"osiiso_mp.{n}" not in documented]
    assert not missing, f"no '::: osiiso_mp.<name>' entry in docs/reference/ for {missing}"


def test_the_reference_documents_public_names_only_and_each_once() -> None:
    documented = _identifiers()
    public = {f"osiiso_mp.{n}" for n in osiiso_mp.__all__}
    assert [i for i in documented if i not in public] == []  # no private module or name
    assert len(documented) == len(set(documented))


def test_every_nav_entry_exists_and_every_page_is_in_the_nav() -> None:
    nav = _nav_pages()
    assert "index.md" in nav and "reference/executors.md" in nav
    assert [p for p in nav if not (DOCS / p).is_file()] == []
    assert len(nav) == len(set(nav))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert sorted(pages - set(nav)) == []


def test_the_changelog_page_includes_the_changelog() -> None:
    text = (DOCS / "changelog.md").read_text()
    assert '--8<-- "CHANGELOG.md"' in text
    assert "## [Unreleased]" not in text  # included, not copied
