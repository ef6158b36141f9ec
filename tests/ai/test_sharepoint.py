"""SharePoint drives are read change by change over (a local stand-in for) Microsoft Graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from parcours.ai import sharepoint
from parcours.ai.extract import extract
from parcours.ai.sharepoint import GraphError, SyncResult
from parcours.core.settings import get_settings

from graph_server import Drive, Graph

SMPC = b"Vaxelio must be stored between 2 and 8 degrees. Do not freeze."
RESULTS = b"# Phase III\n\nSeroconversion was 94% after two doses."


@dataclass
class Library:
    """What the insight engine would hold: text per source_ref, as the real extractor reads it."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    resets: int = 0

    def ingest(self, ref: str, filename: str, data: bytes, meta: dict[str, Any]) -> None:
        sections = extract(filename, data).sections  # raises Unreadable on a corrupt file
        self.docs[ref] = {
            "filename": filename,
            "text": " ".join(" ".join(s.text.split()) for s in sections),
            "meta": meta,
        }

    def remove(self, ref: str) -> bool:
        return self.docs.pop(ref, None) is not None

    def known_etag(self, ref: str) -> str | None:
        doc = self.docs.get(ref)
        return doc["meta"]["etag"] if doc else None

    def reset(self) -> None:
        self.resets += 1

    def texts(self) -> dict[str, str]:
        return {d["filename"]: d["text"] for d in self.docs.values()}

    def sync(self, drive: Drive, cursor: str | None) -> SyncResult:
        settings = get_settings()
        with sharepoint.client_for(settings) as client:
            return sharepoint.sync_drive(
                client,
                drive.id,
                cursor,
                ingest=self.ingest,
                remove=self.remove,
                known_etag=self.known_etag,
                reset=self.reset,
                settings=settings,
            )


@pytest.fixture
def drive(graph: Graph) -> Drive:
    drive = graph.drive("b!medical-library")
    drive.add_folder("Études")
    drive.add("Vaxelio SmPC.txt", SMPC, created_by="Claire Martin", modified_by="Paul Durand")
    drive.add("Résultats phase III.md", RESULTS, in_folder="/Études")
    drive.add("photo du stand.jpg", b"\xff\xd8\xff\xe0 not indexed")
    return drive


def test_drives_are_read_from_a_comma_separated_setting(settings_env):
    settings_env(graph_tenant_id="t", graph_client_id="c", graph_client_secret="s", graph_drives="")
    assert not sharepoint.configured(get_settings())

    settings_env(graph_drives="b!one, b!two")

    assert get_settings().graph_drives == ["b!one", "b!two"]
    assert sharepoint.configured(get_settings())


def test_the_first_sync_reads_every_file_and_skips_folders(graph, drive):
    library = Library()

    result = library.sync(drive, None)

    assert (result.added, result.updated, result.removed, result.skipped) == (2, 0, 0, 1)
    assert result.errors == []
    assert library.texts() == {
        "Vaxelio SmPC.txt": SMPC.decode(),
        "Résultats phase III.md": "Phase III Seroconversion was 94% after two doses.",
    }
    smpc = drive.by_name("Vaxelio SmPC.txt")
    meta = library.docs[f"{drive.id}:{smpc.id}"]["meta"]
    assert meta["title"] == "Vaxelio SmPC.txt"
    assert meta["etag"] == smpc.etag
    assert meta["authors"] == "Claire Martin, Paul Durand"
    assert meta["web_url"].startswith("https://contoso.sharepoint.com/sites/medical/")
    assert meta["modified"].tzinfo is not None and meta["modified"] > datetime(
        2025, 1, 1, tzinfo=UTC
    )
    results = drive.by_name("Résultats phase III.md")
    assert (
        library.docs[f"{drive.id}:{results.id}"]["meta"]["path"] == "/Études/Résultats phase III.md"
    )
    # the full enumeration: root + folder + 3 files, two per page, linked by nextLink
    pages = graph.graph_calls("/root/delta")
    assert len(pages) == 3 and pages[0].query == "" and all(p.query for p in pages[1:])
    assert result.full and result.seen == {
        f"{drive.id}:{i.id}" for i in drive.items.values() if not i.folder
    }
    assert result.cursor.startswith(
        f"{get_settings().graph_base_url}/drives/{drive.id}/root/delta?token="
    )
    # each file came through the 302 to a pre-authenticated URL, which never saw our token
    downloads = graph.graph_calls("/download/")
    assert len(downloads) == 2 and all(c.status == 200 for c in downloads)
    assert all(c.authorization is None for c in downloads)
    assert [c.status for c in graph.graph_calls("/content")] == [302, 302]


def test_the_next_sync_applies_only_what_changed(graph, drive):
    library = Library()
    cursor = library.sync(drive, None).cursor
    smpc = drive.by_name("Vaxelio SmPC.txt")
    drive.edit(smpc, b"Vaxelio must be stored between 2 and 8 degrees, away from light.")
    drive.delete(drive.by_name("Résultats phase III.md"))
    drive.add("FAQ.html", b"<h1>FAQ</h1><p>Two doses, four weeks apart.</p>")
    drive.share(drive.by_name("photo du stand.jpg"))
    graph.calls.clear()

    result = library.sync(drive, cursor)

    assert (result.added, result.updated, result.removed, result.skipped) == (1, 1, 1, 1)
    assert result.errors == [] and not result.full
    assert library.texts() == {
        "Vaxelio SmPC.txt": "Vaxelio must be stored between 2 and 8 degrees, away from light.",
        "FAQ.html": "FAQ Two doses, four weeks apart.",
    }
    assert library.known_etag(f"{drive.id}:{smpc.id}") == smpc.etag
    assert graph.graph_calls("/root/delta")[0].query == cursor.split("?", 1)[1]
    assert len(graph.graph_calls("/download/")) == 2
    assert result.cursor != cursor

    # nothing changed since: nothing is read
    graph.calls.clear()
    again = library.sync(drive, result.cursor)
    assert (again.added, again.updated, again.removed, again.skipped) == (0, 0, 0, 0)
    assert again.cursor == result.cursor
    assert graph.graph_calls("/download/") == []


def test_a_file_whose_etag_is_known_is_not_downloaded_again(graph, drive):
    library = Library()
    cursor = library.sync(drive, None).cursor
    smpc = drive.by_name("Vaxelio SmPC.txt")
    drive.share(smpc)  # in the delta, same eTag
    graph.calls.clear()

    result = library.sync(drive, cursor)

    assert (result.added, result.updated, result.skipped) == (0, 0, 1)
    assert graph.graph_calls("/content") == []


def test_the_token_is_fetched_once_and_renewed_when_refused(graph, drive):
    library = Library()
    cursor = library.sync(drive, None).cursor
    drive.add("FAQ.txt", b"Two doses.")
    library.sync(drive, cursor)

    assert len(graph.token_requests) == 1
    assert graph.token_requests[0] == {
        "tenant": graph.tenant_id,
        "grant_type": "client_credentials",
        "client_id": graph.client_id,
        "scope": get_settings().graph_base_url.removesuffix("/v1.0") + "/.default",
    }

    graph.revoke_tokens()
    result = library.sync(drive, cursor)

    assert len(graph.token_requests) == 2
    assert result.errors == [] and result.cursor


def test_a_throttled_request_waits_for_retry_after(graph, drive):
    graph.throttle = 1
    graph.retry_after = 1
    library = Library()

    result = library.sync(drive, None)

    assert result.added == 2
    first, second = graph.graph_calls("/root/delta")[:2]
    assert (first.status, second.status) == (429, 200)
    assert first.query == second.query
    assert second.at - first.at >= 1


def test_throttling_beyond_the_bound_stops_the_sync_with_a_clear_error(graph, drive):
    graph.throttle = 10
    graph.retry_after = 3600

    with pytest.raises(GraphError, match="throttling.*retry after 3600 s"):
        Library().sync(drive, None)
    assert len(graph.graph_calls("/root/delta")) == 1


def test_an_expired_delta_link_resyncs_from_scratch(graph, drive):
    library = Library()
    cursor = library.sync(drive, None).cursor
    gone = drive.by_name("Résultats phase III.md")
    drive.delete(gone)
    drive.expire_tokens()  # Graph forgot the cursor: the deletion will not be told
    graph.calls.clear()

    result = library.sync(drive, cursor)

    assert library.resets == 1
    delta = graph.graph_calls("/root/delta")
    assert delta[0].status == 410 and delta[1].query == ""  # the Location: a fresh enumeration
    assert result.full and result.cursor and result.cursor != cursor
    assert (result.added, result.updated, result.skipped) == (0, 0, 2)  # eTags unchanged
    assert graph.graph_calls("/content") == []
    # what the caller does with seen after a full enumeration: drop what the drive no longer has
    for ref in set(library.docs) - result.seen:
        library.remove(ref)
    assert set(library.texts()) == {"Vaxelio SmPC.txt"}


def test_a_bad_file_is_reported_and_the_rest_of_the_batch_goes_on(graph, drive):
    drive.add("Étude corrompue.pdf", b"%PDF-1.7\n garbage, not a PDF")
    drive.add("Archivé.txt", b"gone from storage", downloadable=False)
    drive.add("Posologie.txt", b"Two doses, four weeks apart.")
    library = Library()

    result = library.sync(drive, None)

    assert result.added == 3
    assert dict(result.errors).keys() == {"Étude corrompue.pdf", "Archivé.txt"}
    assert "corrupt" in dict(result.errors)["Étude corrompue.pdf"]
    assert "HTTP 404" in dict(result.errors)["Archivé.txt"]
    assert set(library.texts()) == {
        "Vaxelio SmPC.txt",
        "Résultats phase III.md",
        "Posologie.txt",
    }
    assert result.cursor


def test_a_wrong_secret_is_a_clear_error(graph, drive, settings_env):
    settings_env(graph_client_secret="not-the-secret")

    with pytest.raises(
        GraphError, match=r"refused the app's credentials \(HTTP 401, invalid_client\)"
    ):
        Library().sync(drive, None)
    assert graph.graph_calls("/v1.0/") == []


def test_missing_credentials_are_named(settings_env):
    settings_env(graph_tenant_id="", graph_client_id="c", graph_client_secret="")
    settings = get_settings()
    with (
        httpx.Client() as client,
        pytest.raises(GraphError, match="PARCOURS_GRAPH_TENANT_ID, PARCOURS_GRAPH_CLIENT_SECRET"),
    ):
        sharepoint.access_token(client, settings)


def test_a_link_to_another_host_is_not_followed_with_our_token(graph, drive):
    with pytest.raises(GraphError, match="outside"):
        Library().sync(drive, "https://attacker.example/v1.0/drives/x/root/delta?token=abc")
    assert graph.token_requests == []
