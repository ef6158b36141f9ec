"""Adding documents: every format per page, bad files reported one by one, changes and
deletions reaching every index, access lists by role, group, user and country."""

from __future__ import annotations

import json

import pytest

from parcours.ai import assistant, extract, service, sources
from parcours.ai.index import store
from parcours.ai.models import InsightChunk, InsightDocument
from parcours.core import jobs
from parcours.core.db import new_session
from parcours.core.errors import Forbidden, Invalid
from parcours.core.settings import get_settings

import files
from factories import create_user


@pytest.fixture
def marketing(session):
    return create_user(session, "marketing", country="FR")


def add(session, user, name, data, acl=None, **meta):
    doc, _ = service.add_file(
        session, user, name, data, acl=acl or service.Acl.of(), meta=service.Meta(**meta)
    )
    return service.index_now(session, doc.id)


def passages(session, doc):
    return service.passages_of(session, doc)


def test_pdf_text_per_page_with_metadata(session, marketing):
    doc = add(
        session,
        marketing,
        "study.pdf",
        files.pdf(["Intro page.", "Cardiologists prefer webinars over visits."], title="Study"),
    )
    assert doc.state == "indexed" and doc.pages == 2
    assert doc.title == "Study" and doc.authors == "Test Author" and doc.doc_date is not None
    by_page = {p.page: p.text for p in passages(session, doc)}
    assert "webinars" in by_page[2] and "webinars" not in by_page[1]


def test_docx_sections_and_tables(session, marketing):
    data = files.docx([("Leave", "Every employee has 25 days of paid leave."), ("Badges", "Ask.")])
    doc = add(session, marketing, "policy.docx", data, category="hr")
    texts = [(p.location, p.text) for p in passages(session, doc)]
    assert any(loc == "§ Leave" and "25 days" in t for loc, t in texts)
    assert any("Building C" in t for _, t in texts)  # table cells
    assert doc.title == "Policy" and doc.authors == "HR team"


def test_pptx_slides_and_notes(session, marketing):
    data = files.pptx([("Market", "Share grew 4 points."), ("Plan", "Launch in May.")], notes="NB")
    doc = add(session, marketing, "deck.pptx", data)
    found = {p.page: p for p in passages(session, doc)}
    assert found[2].location == "slide 2" and "Launch in May" in found[2].text
    assert doc.pages == 2


def test_xlsx_sheets(session, marketing):
    data = files.xlsx({"Sales": [["Region", "Units"], ["North", 1200]], "Notes": [["ok"]]})
    doc = add(session, marketing, "sales.xlsx", data)
    first = passages(session, doc)[0]
    assert first.location == "Sales" and "North | 1200" in first.text


@pytest.mark.parametrize(
    ("name", "data", "location"),
    [
        ("kb.html", b"<html><title>KB</title><h1>VPN</h1><p>Use profile 443.</p></html>", "§ VPN"),
        ("kb.md", b"# KB\n\n## VPN\nUse profile 443 from hotels.\n", "§ VPN"),
        ("kb.txt", b"Use profile 443 from hotels when the VPN fails.", "p. 1"),
    ],
)
def test_text_formats(session, marketing, name, data, location):
    doc = add(session, marketing, name, data)
    assert doc.state == "indexed"
    assert any(p.location == location and "443" in p.text for p in passages(session, doc))


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.pdf", b"%PDF-1.7 this is not a pdf", "corrupt"),
        ("locked.pdf", files.pdf(["Top secret"], password="pw"), "password"),
        ("locked.docx", files.encrypted_docx(), "password"),
        ("broken.docx", b"PK\x03\x04 truncated", "corrupt"),
        ("scan.pdf", files.pdf([""]), "No text"),
    ],
)
def test_bad_files_fail_with_their_reason(session, marketing, name, data, reason):
    doc = add(session, marketing, name, data)
    assert doc.state == "failed"
    assert reason.lower() in doc.error.lower()
    assert not passages(session, doc)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [("virus.exe", b"MZ", "not a format"), ("empty.pdf", b"", "empty"), ("", b"x", "no name")],
)
def test_refused_at_the_door(session, marketing, name, data, message):
    with pytest.raises(Invalid) as err:
        service.add_file(session, marketing, name, data, acl=service.Acl.of())
    assert err.value.errors[0]["field"] == "file"
    assert message in err.value.detail
    assert session.query(InsightDocument).count() == 0


def test_bad_acl_and_metadata_are_refused_by_field(session, marketing):
    data = files.pdf(["x y z"])
    for acl, field in (
        (service.Acl.of(roles=["chief"]), "acl_roles"),
        (service.Acl.of(countries=["France"]), "acl_countries"),
        (service.Acl.of(users=[999999]), "acl_users"),
        (service.Acl.of(groups=["Bad Name!"]), "acl_groups"),
    ):
        with pytest.raises(Invalid) as err:
            service.add_file(session, marketing, "a.pdf", data, acl=acl)
        assert err.value.errors[0]["field"] == field
    with pytest.raises(Invalid) as err:
        service.add_file(
            session, marketing, "a.pdf", data, acl=service.Acl.of(), meta=service.Meta(category="x")
        )
    assert err.value.errors[0]["field"] == "category"


def test_reps_may_not_add(session):
    rep = create_user(session, "rep")
    with pytest.raises(Forbidden):
        service.add_file(session, rep, "a.txt", b"hello there", acl=service.Acl.of())


def test_one_bad_file_never_stops_a_batch(committed_db, insight_dir):
    """Through the worker: each file is its own job; the corrupt one fails alone."""
    with new_session() as session, session.begin():
        user = create_user(session, "marketing")
        for name, data in (
            ("good1.txt", b"Remote detailing calls last 15 minutes on average."),
            ("bad.pdf", b"%PDF-1.4 garbage"),
            ("good2.md", b"# Webinars\n27,000 people attended the largest webinar."),
        ):
            service.add_file(session, user, name, data, acl=service.Acl.of())
    jobs.run_pending()
    with new_session() as session:
        states = {d.filename: (d.state, d.error) for d in session.query(InsightDocument)}
        assert states["good1.txt"][0] == "indexed"
        assert states["good2.md"][0] == "indexed"
        assert states["bad.pdf"][0] == "failed" and "corrupt" in states["bad.pdf"][1]
        user = session.query(type(user)).filter_by(id=user.id).one()
        found = assistant.search(session, user, "How many people attended the webinar?", k=3)
        assert found and found[0].document.filename == "good2.md"


def test_changed_document_is_indexed_again_and_deleted_one_leaves_every_index(session, marketing):
    doc = add(session, marketing, "notes.txt", b"The launch is planned for March in Spain.")
    again, changed = service.add_file(
        session,
        marketing,
        "notes.txt",
        b"The launch is planned for March in Spain.",
        acl=service.Acl.of(),
        source_ref=doc.source_ref,
    )
    assert not changed and again.id == doc.id
    service.add_file(
        session,
        marketing,
        "notes.txt",
        b"The launch moved to October in Portugal.",
        acl=service.Acl.of(),
        source_ref=doc.source_ref,
    )
    service.index_now(session, doc.id)
    for mode in ("bm25", "dense", "hybrid"):
        texts = [f.chunk.text for f in assistant.search(session, marketing, "launch", mode=mode)]
        assert texts and all("October" in t for t in texts), mode
    path = service.file_path(doc)
    service.remove(session, marketing, doc)
    assert assistant.search(session, marketing, "launch") == []  # the database decides at once
    assert path.exists()  # the file and index entries go when the transaction commits
    session.commit()
    assert not path.exists()
    s = store(get_settings().insight_dir)
    assert s.lexical.search("launch", 10) == []
    assert s.dense.count() == 0
    assert session.query(InsightChunk).count() == 0


def test_access_by_role_group_user_and_country(session, marketing):
    hr = create_user(session, "rep", country="FR")
    other = create_user(session, "rep", country="DE")
    named = create_user(session, "reviewer", country="US")
    service.set_groups(session, hr.id, ["hr"])
    text = "Salary bands are reviewed every April by the compensation committee ({})."
    acls = {
        "group": service.Acl.of(groups=["hr"]),
        "country": service.Acl.of(countries=["DE"]),
        "user": service.Acl.of(users=[named.id]),
        "role": service.Acl.of(roles=["marketing"]),
    }
    docs = {
        k: add(session, marketing, f"{k}.txt", text.format(k).encode(), acl)
        for k, acl in acls.items()
    }

    def seen(user):
        found = assistant.search(session, user, "salary bands compensation", k=20)
        ids = {f.document.id for f in found}
        listed = {d.id for d in service.library(session, user)}
        assert ids <= listed  # a search never shows more than the library
        return {k for k, d in docs.items() if d.id in ids}

    assert seen(hr) == {"group"}
    assert seen(other) == {"country"}
    assert seen(named) == {"user"}
    assert seen(marketing) == {"role"}
    # a change of access reaches the indexes
    service.set_access(session, marketing, docs["role"], service.Acl.of(roles=["rep"]))
    service.index_now(session, docs["role"].id)
    assert "role" in seen(hr) and "role" not in seen(marketing)


def test_watched_folder(session, tmp_path):
    admin = create_user(session, "admin")
    rep = create_user(session, "rep")
    root = tmp_path / "watch"
    (root / "hr").mkdir(parents=True)
    (root / "hr" / ".insight.json").write_text(json.dumps({"roles": ["rep"], "category": "hr"}))
    (root / "hr" / "leave.md").write_text("# Leave\nEmployees have 25 days of paid leave.")
    (root / "secret.txt").write_text("Board minutes: the merger closes in June.")
    (root / "bad.pdf").write_bytes(b"%PDF garbage")
    (root / "image.png").write_bytes(b"\x89PNG")
    summary = sources.scan_folder(session, root)
    assert summary.added == 3 and not summary.failed
    for doc in session.query(InsightDocument):
        service.index_now(session, doc.id)
    leave = session.query(InsightDocument).filter_by(source_ref="hr/leave.md").one()
    assert leave.category == "hr" and leave.acl_roles == ["rep"]
    secret = session.query(InsightDocument).filter_by(source_ref="secret.txt").one()
    assert secret.acl_roles == ["admin"]  # no rules: admins only
    assert {f.document.id for f in assistant.search(session, rep, "merger", k=5)} == set()
    assert assistant.search(session, admin, "merger", k=5)[0].document.id == secret.id
    # unchanged files are left alone; a changed one is indexed again; a deleted one leaves
    again = sources.scan_folder(session, root)
    assert (again.added, again.updated, again.removed) == (0, 0, 0)
    (root / "hr" / "leave.md").write_text("# Leave\nEmployees have 27 days of paid leave.")
    (root / "secret.txt").unlink()
    again = sources.scan_folder(session, root)
    assert (again.updated, again.removed) == (1, 1)
    service.index_now(session, leave.id)
    found = assistant.search(session, rep, "paid leave days", k=5, assistant="helpdesk")
    assert "27 days" in found[0].chunk.text
    assert assistant.search(session, admin, "merger", k=5) == []
    # the folder's rules change, not the file: the access list follows
    (root / "hr" / ".insight.json").write_text(json.dumps({"groups": ["hr"], "category": "hr"}))
    again = sources.scan_folder(session, root)
    assert again.updated == 1
    service.index_now(session, leave.id)
    assert leave.acl_groups == ["hr"] and leave.acl_roles == []
    assert assistant.search(session, rep, "paid leave days", k=5, assistant="helpdesk") == []


def test_folder_rules_of_the_wrong_shape_and_links_are_reported(session, tmp_path):
    root = tmp_path / "watch"
    (root / "bad").mkdir(parents=True)
    (root / "bad" / ".insight.json").write_text(json.dumps({"roles": [1]}))
    (root / "bad" / "a.txt").write_text("Quarterly figures for the board.")
    (root / "open").mkdir()
    (root / "open" / ".insight.json").write_text(json.dumps({"everyone": "false"}))
    (root / "open" / "b.txt").write_text("Board notes.")
    secret = tmp_path / "outside.txt"
    secret.write_text("Outside the watched folder.")
    (root / "link.txt").symlink_to(secret)
    (root / "fine.txt").write_text("A file that is fine.")
    summary = sources.scan_folder(session, root)
    failed = dict(summary.failed)
    assert "roles" in failed["bad/a.txt"] and "everyone" in failed["open/b.txt"]
    assert "link" in failed["link.txt"].lower()
    assert summary.added == 1
    assert {d.source_ref for d in session.query(InsightDocument)} == {"fine.txt"}


def test_the_same_bytes_from_two_people_are_two_documents(session, marketing):
    other = create_user(session, "marketing")
    data = b"Confidential: the launch price is 42 euros."
    mine, _ = service.add_file(
        session, marketing, "p.txt", data, acl=service.Acl.of(users=[marketing.id])
    )
    theirs, changed = service.add_file(session, other, "p.txt", data, acl=service.Acl.of())
    assert changed and theirs.id != mine.id and mine.acl_users == [marketing.id]


def test_changes_wait_for_the_outermost_commit(session, marketing):
    ran = []
    service.after_commit(session, lambda: ran.append("outer"))
    with pytest.raises(ValueError), session.begin_nested():
        service.after_commit(session, lambda: ran.append("rolled back"))
        raise ValueError
    with session.begin_nested():
        service.after_commit(session, lambda: ran.append("released"))
    assert ran == []
    session.commit()
    assert ran == ["outer", "released"]


def test_extract_refuses_unknown_formats():
    with pytest.raises(extract.Unreadable):
        extract.extract("a.odt", b"x")


def test_postgres_full_text_behind_the_same_interface(session, backend, settings_env, tmp_path):
    """PostgreSQL's own full-text search (for app nodes sharing one database) answers the
    same questions from the same passages, and never past the asker's access."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL full-text search needs PostgreSQL")
    from insight_world import build

    world = build(session, tmp_path / "docs")
    questions = [
        "premier frein prescription anticoagulants",
        "GLP-1 receptor agonists growth",
        "oncologists congresses information",
        "cardiologues hospitaliers primo-prescriptions",
    ]
    tantivy = [assistant.search(session, world.marketing, q, k=3, mode="bm25") for q in questions]
    settings_env(insight_lexical="postgres")
    postgres = [assistant.search(session, world.marketing, q, k=3, mode="bm25") for q in questions]
    for q, a, b in zip(questions, tantivy, postgres, strict=True):
        assert b and a[0].chunk.id == b[0].chunk.id, (q, [f.chunk.text[:60] for f in a + b])
    restricted = {
        world.docs["etude-marche-anticoagulants-2026.pdf"].id,
        world.docs["diabetes-market-research-2026.pdf"].id,
    }
    for q in questions:
        for mode in ("bm25", "hybrid"):
            found = assistant.search(session, world.rep, q, k=20, mode=mode)
            assert not {f.document.id for f in found} & restricted
