"""The insight pages through the real app: asking in French and English with cited pages, the
library and its uploads, a document and its file, hand-overs, medical review, and who sees what."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select

from parcours.ai import service
from parcours.ai.models import InsightDocument, InsightQuestion
from parcours.seed import insight as demo

from factories import create_hcp, create_territory_tree, create_user, login
from insight_world import build

FR_QUESTION = "Quel est le premier frein à la prescription des anticoagulants ?"
EN_QUESTION = "How much did GLP-1 receptor agonists grow in 2025?"
ANTICOAGULANTS = "etude-marche-anticoagulants-2026.pdf"
DIABETES = "diabetes-market-research-2026.pdf"
ONCOLOGY = "oncology-hcp-engagement-survey-2026.pdf"


@pytest.fixture
def world(session, tmp_path):
    return build(session, tmp_path / "docs")


def as_user(client, user) -> str:
    """Log in as user; the CSRF token of the session."""
    client.cookies.clear()
    assert login(client, user.email).status_code == 303
    page = client.get("/insight")
    assert page.status_code == 200, page.text[:500]
    return re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)


def ask(client, token: str, question: str, htmx: bool = False, **fields):
    data = {"_csrf": token, "question": question, "assistant": "insight", **fields}
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post("/insight/ask", data=data, headers=headers)


def field_error(html: str, name: str) -> str:
    found = re.search(rf'<p class="field-error" id="{name}-error">(.*?)</p>', html, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip() if found else ""


def last_question(session) -> InsightQuestion:
    return session.scalars(select(InsightQuestion).order_by(InsightQuestion.id.desc())).first()


# ---------------------------------------------------------------- asking


def test_a_french_question_is_answered_in_french_with_a_link_to_the_page(client, session, world):
    world.marketing.language = "fr"
    token = as_user(client, world.marketing)
    page = client.get("/insight").text
    assert 'name="question"' in page and "Demander" in page
    assert "Ex.\u00a0: quel est le premier frein" in page  # French typography in the examples

    resp = ask(client, token, FR_QUESTION)
    assert resp.status_code == 200
    html = resp.text
    doc = world.docs[ANTICOAGULANTS]
    assert "61\u00a0%" in html or "61 %" in html
    assert f'href="/insight/documents/{doc.id}?page=4#p4"' in html
    assert f"/insight/documents/{doc.id}/file#page=4" in html  # the PDF at that page
    assert "Sources" in html and 'class="ins-cite"' in html
    record = last_question(session)
    assert record.outcome == "answered" and record.language == "fr"
    assert f'href="/insight/questions/{record.id}"' in html  # permalink and history


def test_an_english_question_with_htmx_swaps_the_answer_in_under_the_box(client, session, world):
    token = as_user(client, world.marketing)
    resp = ask(client, token, EN_QUESTION, htmx=True)
    assert resp.status_code == 200
    html = resp.text
    assert "<html" not in html  # a fragment
    assert "24%" in html
    doc = world.docs[DIABETES]
    assert f'href="/insight/documents/{doc.id}?page=2#p2"' in html
    # the box is emptied for the next question and the history gains this one
    assert 'id="ask-fields" class="ins-fields" hx-swap-oob="true"' in html
    assert 'id="history"' in html and EN_QUESTION in html
    assert "Quoted from the sources" in html  # the method, shown discreetly

    record = last_question(session)
    permalink = client.get(f"/insight/questions/{record.id}")
    assert permalink.status_code == 200 and "24%" in permalink.text
    assert f"/insight/documents/{doc.id}?page=2#p2" in permalink.text


def test_an_empty_question_is_refused_next_to_the_field(client, session, world):
    token = as_user(client, world.marketing)
    resp = ask(client, token, "   ")
    assert resp.status_code == 422
    assert field_error(resp.text, "question") == "Type a question."
    assert 'aria-invalid="true"' in resp.text

    too_long = ask(client, token, "word " * 300, htmx=True)
    assert too_long.status_code == 422
    assert field_error(too_long.text, "question") == "At most 1000 characters."

    world.marketing.language = "fr"
    french = ask(client, token, "")
    assert field_error(french.text, "question") == "Tapez une question."
    assert session.scalar(select(InsightQuestion.id)) is None


def test_a_question_nothing_answers_is_refused_with_a_suggestion(client, world):
    token = as_user(client, world.marketing)
    html = ask(client, token, "What is the capital of Australia?").text
    assert "The documents you can read do not answer this question." in html
    assert "Sources" not in html


def test_feedback_swaps_to_thanks(client, session, world):
    token = as_user(client, world.marketing)
    ask(client, token, EN_QUESTION)
    record = last_question(session)
    resp = client.post(
        f"/insight/questions/{record.id}/feedback",
        data={"_csrf": token, "feedback": "down", "note": "Give the German figure too."},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200
    assert "Thanks" in resp.text and "<form" not in resp.text
    assert (record.feedback, record.feedback_note) == ("down", "Give the German figure too.")
    # someone else cannot rate it, nor read it
    token = as_user(client, world.rep)
    other = client.post(
        f"/insight/questions/{record.id}/feedback", data={"_csrf": token, "feedback": "up"}
    )
    assert other.status_code == 404
    assert client.get(f"/insight/questions/{record.id}").status_code == 404


# ---------------------------------------------------------------- who sees what


def test_a_rep_never_sees_marketing_only_documents(client, session, world):
    restricted = [world.docs[ANTICOAGULANTS], world.docs[DIABETES]]
    token = as_user(client, world.rep)
    library = client.get("/insight/documents").text
    assert world.docs[ONCOLOGY].title in library
    for doc in restricted:
        assert doc.title not in library
        assert client.get(f"/insight/documents/{doc.id}").status_code == 404
        assert client.get(f"/insight/documents/{doc.id}/file").status_code == 404
    assert 'name="file"' not in library  # reps read, they do not add

    for question in (FR_QUESTION, EN_QUESTION):
        html = ask(client, token, question).text
        for doc in restricted:
            assert f"/insight/documents/{doc.id}" not in html
        assert "61" not in html and "24%" not in html

    blocked = client.post("/insight/documents", data={"_csrf": token})
    assert blocked.status_code == 403


def test_the_document_page_shows_the_cited_page_and_serves_the_file(client, world):
    as_user(client, world.marketing)
    doc = world.docs[ANTICOAGULANTS]
    html = client.get(f"/insight/documents/{doc.id}?page=4").text
    assert re.search(r'<section class="ins-page is-target" id="p4"', html)
    assert 'id="p1"' in html and 'id="p5"' in html
    assert "61 % des médecins généralistes" in html
    assert "delete-dialog" in html  # marketing added it: may change and delete it

    file = client.get(f"/insight/documents/{doc.id}/file")
    assert file.status_code == 200
    assert file.headers["content-type"] == "application/pdf"
    assert file.headers["content-disposition"].startswith("inline")
    assert ANTICOAGULANTS in file.headers["content-disposition"]
    assert file.content.startswith(b"%PDF")


def test_an_html_file_is_served_sandboxed(client, world):
    as_user(client, world.marketing)
    doc = world.docs["it-help.html"]
    file = client.get(f"/insight/documents/{doc.id}/file")
    assert file.status_code == 200
    assert "sandbox" in file.headers["content-security-policy"]


def test_the_owner_changes_who_may_read_and_the_rep_then_reads_it(client, session, world):
    token = as_user(client, world.marketing)
    doc = world.docs[DIABETES]
    bad = client.post(
        f"/insight/documents/{doc.id}/access",
        data={"_csrf": token, "acl_roles": ["rep"], "acl_countries": "France"},
    )
    assert bad.status_code == 422
    assert "two-letter country code" in field_error(bad.text, "acl_countries")
    resp = client.post(
        f"/insight/documents/{doc.id}/access",
        data={"_csrf": token, "acl_roles": ["marketing", "rep"], "acl_countries": "fr"},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    assert (doc.acl_roles, doc.acl_countries, doc.state) == (["marketing", "rep"], ["FR"], "queued")
    service.index_now(session, doc.id)
    as_user(client, world.rep)
    assert client.get(f"/insight/documents/{doc.id}").status_code == 200
    # a rep may read it but not change it
    page = client.get(f"/insight/documents/{doc.id}").text
    assert f'action="/insight/documents/{doc.id}/access"' not in page


def test_the_owner_deletes_a_document(client, session, world):
    token = as_user(client, world.marketing)
    doc = world.docs[ONCOLOGY]
    path = service.file_path(doc)
    resp = client.post(
        f"/insight/documents/{doc.id}/delete", data={"_csrf": token}, follow_redirects=False
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/insight/documents"
    assert session.get(InsightDocument, doc.id) is None and not path.exists()
    assert "Document deleted." in client.get("/insight/documents").text


# ---------------------------------------------------------------- uploads


def test_uploading_several_files_adds_the_good_ones_and_names_the_refused_one(
    client, session, world, tmp_path
):
    token = as_user(client, world.marketing)
    form = client.get("/insight/documents").text
    assert 'type="file" multiple' in form
    assert re.search(r'name="acl_roles" value="marketing" checked', form)  # own role by default

    one = demo.pdf(tmp_path / "cardio-panel-2026.pdf", "Cardio panel 2026", ["Panel wave one."])
    two = demo.pdf(tmp_path / "cardio-panel-2027.pdf", "Cardio panel 2027", ["Panel wave two."])
    files = [
        ("file", (one.name, one.read_bytes(), "application/pdf")),
        ("file", (two.name, two.read_bytes(), "application/pdf")),
        ("file", ("tool.exe", b"MZ\x90\x00", "application/octet-stream")),
    ]
    data = {"_csrf": token, "acl_roles": ["marketing", "manager"], "category": "study"}
    resp = client.post("/insight/documents", data=data, files=files, follow_redirects=False)
    assert resp.status_code == 303, resp.text[:2000]
    added = session.scalars(
        select(InsightDocument).where(InsightDocument.filename.like("cardio-panel-%"))
    ).all()
    assert sorted(d.filename for d in added) == [one.name, two.name]
    assert all(d.acl_roles == ["manager", "marketing"] and d.state == "queued" for d in added)
    names = session.scalars(select(InsightDocument.filename)).all()
    assert "tool.exe" not in names

    library = client.get("/insight/documents").text
    assert "2 added, 1 refused: tool.exe: not a format we index" in library  # the flash
    refused = re.search(r'id="file-error">(.*?)</div>\s*</div>', library, re.S).group(1)
    assert "tool.exe: not a format we index" in refused
    # the list refreshes itself while they are indexed, and stops once they are
    assert 'hx-trigger="every 2s"' in library and "Queued" in library
    for doc in added:
        service.index_now(session, doc.id)
    partial = client.get("/insight/documents", headers={"HX-Request": "true"}).text
    assert "every 2s" not in partial and "Indexed" in partial and "<html" not in partial


def test_an_upload_where_no_file_is_taken_is_refused_next_to_the_file_field(client, session, world):
    world.marketing.language = "fr"
    token = as_user(client, world.marketing)
    before = session.scalar(select(InsightDocument.id).order_by(InsightDocument.id.desc()))
    files = [
        ("file", ("notes.exe", b"MZ", "application/octet-stream")),
        ("file", ("vide.txt", b"", "text/plain")),
    ]
    resp = client.post(
        "/insight/documents",
        data={"_csrf": token, "acl_countries": "FR, Germany"},
        files=files,
    )
    assert resp.status_code == 422
    assert "deux lettres" in field_error(resp.text, "acl_countries")
    resp = client.post("/insight/documents", data={"_csrf": token}, files=files)
    assert resp.status_code == 422
    refused = unescape(re.search(r'id="file-error">(.*?)</div>\s*</div>', resp.text, re.S)[1])
    assert "notes.exe\u00a0: ce format n'est pas indexé" in refused
    assert "vide.txt\u00a0: le fichier est vide." in refused
    after = session.scalar(select(InsightDocument.id).order_by(InsightDocument.id.desc()))
    assert after == before


# ---------------------------------------------------------------- help desk and medical review


def test_the_help_desk_hands_over_and_an_admin_replies(client, session, world):
    token = as_user(client, world.rep)
    html = ask(client, token, "Can I bring my dog to the office?", assistant="helpdesk").text
    assert "A person from the help desk will answer; your question was passed on." in html
    record = last_question(session)
    assert record.outcome == "handover"
    assert client.get("/insight/handovers").status_code == 403

    token = as_user(client, world.admin)
    queue = client.get("/insight/handovers").text
    assert "Can I bring my dog to the office?" in queue
    empty = client.post(
        f"/insight/questions/{record.id}/reply",
        data={"_csrf": token, "reply": " "},
        headers={"HX-Request": "true"},
    )
    assert empty.status_code == 422
    assert field_error(empty.text, f"reply-{record.id}") == "Write the reply."
    resp = client.post(
        f"/insight/questions/{record.id}/reply",
        data={"_csrf": token, "reply": "Only guide dogs, sorry."},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200 and "Only guide dogs, sorry." in resp.text
    assert record.reply == "Only guide dogs, sorry." and record.handled_by == world.admin.id

    as_user(client, world.rep)
    mine = client.get(f"/insight/questions/{record.id}").text
    assert "Only guide dogs, sorry." in mine and "Help desk replied" in mine


def test_a_medical_information_draft_waits_for_review_then_is_approved(
    client, session, world, tmp_path, mlr
):
    from parcours.ai import sources

    from content_factories import approve, incoming_file, upload_version

    approved = incoming_file()
    demo.pdf(
        approved,
        "Oncolia: answers for HCPs",
        [
            "Renal impairment. No dose adjustment of Oncolia is needed in mild or moderate renal "
            "impairment. In severe renal impairment the starting dose is reduced to 40 mg daily."
        ],
    )
    approve(session, mlr, upload_version(session, mlr, file=approved, filename="faq.pdf"))
    sources.sync_content(session)
    for doc in session.query(InsightDocument).filter_by(source="content"):
        service.index_now(session, doc.id)
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]], country="FR")
    hcp = create_hcp(session, tree["north1"], last_name="Moreau", first_name="Alice")
    outsider = create_hcp(session, tree["south1"], last_name="Lointain")
    reviewer = create_user(session, "reviewer", review_role="medical")
    question = "Is a dose adjustment of Oncolia needed in severe renal impairment?"

    token = as_user(client, rep)
    page = client.get("/insight?assistant=medinfo").text
    assert 'name="hcp_q"' in page
    options = client.get("/insight/hcps?hcp_q=Mor", headers={"HX-Request": "true"}).text
    assert f'value="{hcp.id}"' in options and "Moreau" in options
    no_hcp = ask(client, token, question, assistant="medinfo")
    assert no_hcp.status_code == 422
    assert field_error(no_hcp.text, "hcp_id") == "Choose the HCP who asked."
    elsewhere = ask(client, token, question, assistant="medinfo", hcp_id=str(outsider.id))
    assert elsewhere.status_code == 422
    resp = ask(client, token, question, assistant="medinfo", hcp_id=str(hcp.id))
    assert resp.status_code == 200
    assert "Draft — waiting for medical review, nothing is sent" in resp.text
    assert "40 mg" in resp.text
    record = last_question(session)
    assert (record.hcp_id, record.review_state) == (hcp.id, "pending")

    token = as_user(client, reviewer)
    queue = client.get("/insight/review").text
    # a reviewer reads no account: the HCP is not named to them
    assert question in queue and "Alice Moreau" not in queue
    edited = record.answer + " Monitor renal function."
    resp = client.post(
        f"/insight/questions/{record.id}/review",
        data={"_csrf": token, "decision": "approved", "answer": edited},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    assert (record.review_state, record.answer, record.reviewed_by) == (
        "approved",
        edited,
        reviewer.id,
    )
    assert question not in client.get("/insight/review").text

    as_user(client, rep)
    assert "Approved by" in client.get(f"/insight/questions/{record.id}").text
    assert client.get("/insight/review").status_code == 403


def test_why_a_file_failed_is_said_in_the_reader_language(client, session, world):
    doc, _ = service.add_file(
        session,
        world.marketing,
        "locked.pdf",
        b"%PDF-1.4 not a real pdf",
        acl=service.Acl.of(roles=["marketing"]),
    )
    service.index_now(session, doc.id)
    assert doc.state == "failed"
    world.marketing.language = "fr"
    session.flush()
    as_user(client, world.marketing)
    library = unescape(client.get("/insight/documents").text)
    assert "Le PDF est endommagé." in library
    page = unescape(client.get(f"/insight/documents/{doc.id}").text)
    assert "Le PDF est endommagé." in page


def test_an_admin_gives_a_user_groups_and_group_documents_open_to_them(
    client, session, world, tmp_path
):
    path = tmp_path / "hr-salaries.md"
    path.write_text("# Salaries\nSalary bands are reviewed every April by the committee.")
    doc, _ = service.add_file(
        session,
        world.admin,
        path.name,
        path.read_bytes(),
        acl=service.Acl.of(groups=["hr"]),
        meta=service.Meta(category="hr"),
    )
    service.index_now(session, doc.id)
    token = as_user(client, world.admin)
    page = client.get(f"/admin/users/{world.rep.id}").text
    assert 'name="groups"' in page
    form = {"_csrf": token, "full_name": world.rep.full_name, "role": "rep", "language": "en"}
    bad = client.post(f"/admin/users/{world.rep.id}", data={**form, "groups": "Human Resources!"})
    assert bad.status_code == 422 and "group" in bad.text
    assert service.group_names(session, world.rep.id) == []
    ok = client.post(
        f"/admin/users/{world.rep.id}", data={**form, "groups": "hr, it"}, follow_redirects=False
    )
    assert ok.status_code == 303
    assert service.group_names(session, world.rep.id) == ["hr", "it"]
    assert 'value="hr, it"' in client.get(f"/admin/users/{world.rep.id}").text
    from parcours.ai import assistant

    found = assistant.search(session, world.rep, "salary bands", assistant="helpdesk")
    assert found and found[0].document.id == doc.id
