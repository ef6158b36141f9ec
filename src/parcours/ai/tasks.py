"""The worker indexes queued documents, and keeps the watched folder and approved content in."""

from __future__ import annotations

import logging

from parcours.ai import service
from parcours.ai.models import InsightDocument
from parcours.core import jobs
from parcours.core.db import new_session
from parcours.core.settings import get_settings

log = logging.getLogger(__name__)


@jobs.handler(service.INDEX_JOB)
def index_document(payload: dict) -> None:
    """Read the file into passages (one transaction), embed and index them outside any
    transaction, then mark the document indexed: a slow embedding never holds the database."""
    document_id = int(payload["document_id"])
    with new_session(write=True) as session, session.begin():
        doc = session.get(InsightDocument, document_id)
        if doc is None or doc.state == "indexed":
            return  # deleted since, or indexed already (the command line indexes at once)
        entries = service.prepare(session, document_id)
    service.publish(document_id, entries)
    if entries is not None:
        with new_session(write=True) as session, session.begin():
            service.finish(session, document_id)


@jobs.periodic(get_settings().insight_watch_s)
def watch() -> None:
    """New, changed and deleted files of the watched folder; approved content in and out."""
    from parcours.ai import sources

    settings = get_settings()
    # each source on its own: one that fails never stops the others (withdrawals included)
    if settings.insight_watch_dir is not None:
        try:
            with new_session(write=True) as session, session.begin():
                summary = sources.scan_folder(session, settings.insight_watch_dir)
            if summary.changed:
                log.info("watched folder: %s", summary)
        except Exception:
            log.exception("watched folder: scan failed")
    try:
        with new_session(write=True) as session, session.begin():
            sources.sync_content(session)
    except Exception:
        log.exception("approved content: sync failed")
    try:
        with new_session(write=True) as session, session.begin():
            for drive, summary in sources.sync_sharepoint(session).items():
                if summary.changed:
                    log.info("SharePoint drive %s: %s", drive, summary)
    except Exception:
        log.exception("SharePoint: sync failed")
