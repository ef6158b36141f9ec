"""SharePoint documents through the service: indexed under the drive's access rules, changes
and deletions followed, the cursor kept in the database (Graph is the local stand-in)."""

from __future__ import annotations

import json

import pytest

from parcours.ai import assistant, service, sharepoint, sources
from parcours.ai.models import InsightDocument, InsightSync
from parcours.core.settings import get_settings

from factories import create_user

DRIVE = "b!market-research"


@pytest.fixture(autouse=True)
def market_research_drive(graph, settings_env):
    settings_env(
        graph_drives=DRIVE,
        graph_drive_rules=json.dumps({DRIVE: {"roles": ["marketing"], "category": "study"}}),
    )


def index_all(session):
    for doc in session.query(InsightDocument).filter_by(state="queued"):
        service.index_now(session, doc.id)


def test_a_drive_is_followed_by_delta(session, graph):
    marketing = create_user(session, "marketing")
    rep = create_user(session, "rep")
    drive = graph.drive(DRIVE)
    drive.add("Panel 2026.md", b"# Panel\nHospital pharmacists favour biosimilars in 2026.")
    drive.add("Old.txt", b"The 2019 panel preferred originator brands.")
    drive.add("broken.pdf", b"%PDF-1.4 not really")

    first = sources.sync_sharepoint(session)[DRIVE]
    index_all(session)
    assert first.added == 3 and not first.failed
    panel = session.query(InsightDocument).filter_by(filename="Panel 2026.md").one()
    assert panel.acl_roles == ["marketing"] and panel.category == "study"
    assert panel.web_url.startswith("https://") and panel.source_version
    broken = session.query(InsightDocument).filter_by(filename="broken.pdf").one()
    assert broken.state == "failed"
    found = assistant.search(session, marketing, "biosimilars hospital pharmacists", k=3)
    assert found[0].document.id == panel.id
    assert assistant.search(session, rep, "biosimilars hospital pharmacists", k=3) == []
    cursor = session.query(InsightSync).filter_by(source="sharepoint", scope=DRIVE).one().cursor
    assert cursor and "token=" in cursor

    drive.edit(drive.by_name("Panel 2026.md"), b"# Panel\nPharmacists now favour originators.")
    drive.delete(drive.by_name("Old.txt"))
    second = sources.sync_sharepoint(session)[DRIVE]
    index_all(session)
    assert (second.updated, second.removed) == (1, 1)
    assert session.query(InsightDocument).filter_by(filename="Old.txt").count() == 0
    texts = [f.chunk.text for f in assistant.search(session, marketing, "pharmacists favour")]
    assert texts and all("originators" in t for t in texts)


def test_a_wrong_secret_keeps_the_cursor_and_says_why(session, graph, settings_env):
    settings_env(graph_client_secret="wrong")
    sharepoint.forget_token(get_settings())
    summary = sources.sync_sharepoint(session)[DRIVE]
    assert summary.failed
    sync = session.query(InsightSync).filter_by(source="sharepoint", scope=DRIVE).one()
    assert sync.error and sync.cursor is None
