"""The product's words: one glossary, written from ``cascade_radar.glossary`` into docs/glossary.md and the dashboard."""

from __future__ import annotations

from cascade_radar import glossary
from cascade_radar.config import PROJECT_ROOT

ASKED = ("SOPR", "STH-NUPL", "funding", "open interest", "log-odds", "out-of-fold", "base rate", "liquidation cascade", "relative risk",
         "the warning checklist", "walk-forward fold", "scored as missing")


def test_docs_glossary_is_the_glossary_module_and_the_readme_links_it() -> None:
    assert (PROJECT_ROOT / "docs" / "glossary.md").read_text() == glossary.markdown(), "run `make docs`"
    assert "](docs/glossary.md)" in (PROJECT_ROOT / "README.md").read_text()


def test_every_word_a_desk_asked_for_is_defined_once() -> None:
    terms = [term for term, _ in glossary.TERMS]
    assert len(terms) == len(set(terms))
    for word in ASKED:
        assert any(term == word or term.startswith(f"{word} (") for term in terms), word
    assert all(meaning.endswith(".") and len(meaning) > 40 for _, meaning in glossary.TERMS)


def test_the_html_list_escapes_every_text() -> None:
    page = glossary.html_list()
    assert page.count("<dt ") == len(glossary.TERMS) and page.count("<dd>") == len(glossary.TERMS)
    assert "p / (1 − p)" in page and "<script" not in page and '"missing (scored as missing)"' not in page  # quotes escaped
