"""Approved content joins the index by itself; withdrawn content leaves it at once; the
medical-information assistant answers from approved content only, and a person reviews."""

from __future__ import annotations

import pytest

from parcours.ai import assistant, service, sources
from parcours.ai.models import InsightDocument
from parcours.content import review
from parcours.core.errors import Forbidden

from content_factories import acting, approve, upload_version
from factories import create_user

FACT = "Cardiozen lowers the risk of stroke by 32 percent in the pivotal trial."


def index_all(session):
    for doc in session.query(InsightDocument).filter_by(state="queued"):
        service.index_now(session, doc.id)


def test_approved_content_in_withdrawn_content_out(session, mlr):
    draft = upload_version(session, mlr, texts=[FACT, "Dosing: one tablet a day."])
    sources.sync_content(session)
    assert session.query(InsightDocument).filter_by(source="content").count() == 0
    version = approve(session, mlr, draft)
    summary = sources.sync_content(session)
    index_all(session)
    assert summary.added == 1
    doc = session.query(InsightDocument).filter_by(source="content").one()
    assert doc.acl_countries == ["FR"] and doc.category == "other"
    rep, hcp = mlr.rep, mlr.hcp
    record = assistant.ask(
        session,
        rep,
        "By how much does Cardiozen lower the risk of stroke?",
        assistant="medinfo",
        hcp_id=hcp.id,
    )
    assert record.outcome == "answered" and "32 percent" in record.answer
    assert record.review_state == "pending"
    # a rep in another country reads nothing of it
    other = create_user(session, "rep", country="DE")
    assert assistant.search(session, other, "Cardiozen stroke", assistant="medinfo") == []
    # only a medical reviewer approves it; then it is approved, by whom
    with pytest.raises(Forbidden):
        assistant.review(session, rep, record, "approved", None)
    assistant.review(session, mlr.medical, record, "approved", record.answer)
    assert record.review_state == "approved" and record.reviewed_by == mlr.medical.id

    with acting(session, mlr.admin):
        review.withdraw(session, mlr.admin, version.id, "Label change")
    # at once, before the worker's next pass
    assert assistant.search(session, rep, "Cardiozen stroke", assistant="medinfo") == []
    assert sources.sync_content(session).removed == 1
    assert assistant.search(session, rep, "Cardiozen stroke", assistant="medinfo") == []
