"""Asking the insight assistant: cited answers, the right pages, nothing a user may not read."""

from __future__ import annotations

import pytest
from insight_world import build

from parcours.ai import assistant


@pytest.fixture
def world(session, tmp_path):
    return build(session, tmp_path / "docs")


def test_documents_are_indexed_per_page(world):
    doc = world.docs["etude-marche-anticoagulants-2026.pdf"]
    assert doc.state == "indexed", doc.error
    assert doc.pages == 5 and doc.chunks >= 5
    assert doc.language == "fr"


def test_french_question_cites_the_page_that_answers(session, world):
    record = assistant.ask(
        session, world.marketing, "Quel est le premier frein à la prescription des anticoagulants ?"
    )
    assert record.outcome == "answered", record.answer
    assert "61 %" in record.answer
    first = record.passages[0]
    assert first["document_id"] == world.docs["etude-marche-anticoagulants-2026.pdf"].id
    assert first["page"] == 4
    assert "[1]" in record.answer


def test_english_question(session, world):
    record = assistant.ask(
        session, world.marketing, "How much did GLP-1 receptor agonists grow in 2025?"
    )
    assert record.outcome == "answered"
    assert "24%" in record.answer
    assert record.passages[0]["page"] == 2


def test_rep_never_sees_marketing_documents(session, world):
    restricted = {
        world.docs["etude-marche-anticoagulants-2026.pdf"].id,
        world.docs["diabetes-market-research-2026.pdf"].id,
    }
    for question in (
        "Quel est le premier frein à la prescription des anticoagulants ?",
        "How much did GLP-1 receptor agonists grow in 2025?",
        "anticoagulants",
    ):
        for mode in ("bm25", "dense", "hybrid"):
            found = assistant.search(session, world.rep, question, k=50, mode=mode)
            assert not {f.document.id for f in found} & restricted
        record = assistant.ask(session, world.rep, question)
        assert not {p["document_id"] for p in record.passages} & restricted
        assert "61 %" not in (record.answer or "") and "24%" not in (record.answer or "")


def test_unsupported_question_is_refused(session, world):
    record = assistant.ask(session, world.marketing, "What is the capital of Australia?")
    assert record.outcome == "refused"
    assert record.passages == []
