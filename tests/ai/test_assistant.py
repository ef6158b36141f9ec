"""Asking the insight assistant: cited answers, the right pages, nothing a user may not read."""

from __future__ import annotations

import pytest

from parcours.ai import assistant

from insight_world import build


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


@pytest.fixture
def model(settings_env):
    """An OpenAI-compatible endpoint on this machine that the admin configured."""
    from openai_server import Received, chat_app, serve

    received = Received()
    with serve(chat_app(received)) as base:
        settings_env(llm_base_url=f"{base}/v1", llm_model="local-test-model", llm_timeout_s=2)
        yield received


def test_with_a_model_the_answer_is_generated_from_the_passages_only(session, world, model):
    record = assistant.ask(
        session, world.marketing, "What share of endocrinologists accepted a remote call?"
    )
    assert record.method == "llm:local-test-model"
    assert record.outcome == "answered" and "[1]" in record.answer
    prompt = model.bodies[0]["messages"][-1]["content"]
    assert "55% of endocrinologists accepted" in prompt
    # the rep's question never sends marketing's passages to the model
    model.bodies.clear()
    assistant.ask(session, world.rep, "What share of endocrinologists accepted a remote call?")
    assert all("55% of" not in b["messages"][-1]["content"] for b in model.bodies)


def test_a_model_that_declines_means_no_answer(session, world, model):
    model.mode = "no_answer"
    record = assistant.ask(session, world.marketing, "How much did GLP-1 agonists grow?")
    assert record.outcome == "refused" and record.answer is None and record.passages == []


def test_an_unreachable_model_falls_back_to_the_extractive_answer(session, world, model):
    model.mode = "error"
    record = assistant.ask(session, world.marketing, "How much did GLP-1 agonists grow in 2025?")
    assert record.method == "extractive" and "24%" in record.answer


def test_questions_answers_and_feedback_are_audited(session, world):
    from parcours.core.models import AuditRecord

    record = assistant.ask(
        session, world.marketing, "Combien de jours de télétravail ?", assistant="helpdesk"
    )
    assistant.feedback(session, world.marketing, record, "down", "Not what I asked")
    session.flush()
    rows = (
        session.query(AuditRecord)
        .filter_by(entity="insight_questions", entity_id=str(record.id))
        .order_by(AuditRecord.seq)
        .all()
    )
    assert [r.action for r in rows][:2] == ["create", "update"]
    assert rows[0].after["question"] == "Combien de jours de télétravail ?"
    assert rows[0].after["passages"][0]["page"] == record.passages[0]["page"]
    assert rows[1].after["feedback"] == "down"


def test_help_desk_hands_over_what_it_cannot_answer(session, world):
    record = assistant.ask(
        session, world.rep, "Can I bring my dog to the office?", assistant="helpdesk"
    )
    assert record.outcome == "handover"
    assert record in assistant.handovers(session, world.admin)
    assistant.reply(session, world.admin, record, "Only guide dogs are allowed.")
    assert record.handled_by == world.admin.id
    assert record not in assistant.handovers(session, world.admin)


def test_bad_questions(session, world):
    from parcours.core.errors import Invalid

    for question in ("", "   ", "?!", "x" * 1001):
        with pytest.raises(Invalid) as err:
            assistant.ask(session, world.marketing, question)
        assert err.value.errors[0]["field"] == "question"
    with pytest.raises(Invalid) as err:
        assistant.ask(session, world.marketing, "ok question", filters={"since": "yesterday"})
    assert err.value.errors[0]["field"] == "since"


def test_medical_information_is_for_an_hcp_the_asker_may_read(session, world):
    from parcours.core.errors import Invalid

    with pytest.raises(Invalid) as err:
        assistant.ask(session, world.rep, "dosing?", assistant="medinfo", hcp_id=987654)
    assert err.value.errors[0]["field"] == "hcp_id"


def test_an_hcp_is_named_only_for_medical_information(session, world):
    from parcours.core.errors import Invalid

    with pytest.raises(Invalid) as err:
        assistant.ask(session, world.rep, "anticoagulants?", hcp_id=1)
    assert err.value.errors[0]["field"] == "hcp_id"


def test_date_filters_on_an_answer(session, world):
    record = assistant.ask(
        session,
        world.marketing,
        "How much did GLP-1 receptor agonists grow in 2025?",
        filters={"since": "2000-01-01", "until": "2100-01-01"},
    )
    assert record.outcome == "answered"
    record = assistant.ask(
        session, world.marketing, "How much did GLP-1 grow?", filters={"until": "2001-01-01"}
    )
    assert record.outcome == "refused"


def test_an_answer_is_withheld_once_its_source_is_restricted(session, world):
    from parcours.ai import service

    doc = world.docs["oncology-hcp-engagement-survey-2026.pdf"]
    record = assistant.ask(
        session, world.rep, "What do oncologists expect for medical information?"
    )
    assert record.outcome == "answered" and assistant.answer_readable(session, world.rep, record)
    service.set_access(session, world.marketing, doc, service.Acl.of(roles=["marketing"]))
    assert not assistant.answer_readable(session, world.rep, record)
    assert assistant.answer_readable(session, world.admin, record)


@pytest.mark.parametrize(
    ("text", "cited", "expected"),
    [
        ("A [2]. B [5].", [2, 5], "A [1]. B [2]."),
        ("A [2, 5]. B [5].", [2, 5], "A [1, 2]. B [2]."),
        ("A [3][1].", [1, 3], "A [2][1]."),
    ],
)
def test_model_citations_are_renumbered_in_every_form(text, cited, expected):
    assert assistant.renumber(text, cited)[0] == expected
