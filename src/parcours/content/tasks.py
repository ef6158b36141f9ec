"""Background work of the content library: rendering uploads, expiring content, sweeping files."""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import contextmanager

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from parcours.content import render, review, service, storage
from parcours.content.models import ContentPage, ContentVersion
from parcours.core import audit, jobs
from parcours.core.db import new_session
from parcours.core.errors import Invalid
from parcours.core.settings import get_settings

log = logging.getLogger("parcours.content")


@contextmanager
def _own_session():
    with new_session() as session, session.begin():
        audit.bind_actor(session, None, "worker")
        yield session


@jobs.handler("content.render")
def render_version(payload: dict) -> None:
    _render(payload["version_id"], _own_session)


def render_with(session: Session, version_id: int) -> None:
    """Render inside the caller's transaction (tests, the seed)."""

    @contextmanager
    def same():
        yield session

    _render(version_id, same)


def _render(version_id: int, open_session) -> None:
    """Render every page of a version to images and text; progress is visible while it runs."""
    settings = get_settings()
    with open_session() as session:
        version = session.get(ContentVersion, version_id)
        if version is None or version.render_state == "ready":
            return
        kind, original = version.kind, storage.original_path(version)
    out_dir = storage.version_dir(version_id)
    with open_session() as session:
        service.set_render_progress(
            session, version_id, render_state="rendering", render_done=0, render_error=None
        )
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and done < total:
            return
        last[0] = now
        with open_session() as s:
            service.set_render_progress(s, version_id, render_done=done, page_count=total)

    try:
        rendered = render.render(kind, original, out_dir, settings, progress)
        if len(rendered) > settings.content_max_pages:
            raise Invalid(
                f"This file has {len(rendered)} pages; the library takes "
                f"{settings.content_max_pages} at most.",
                field="file",
            )
    except Invalid as exc:
        with open_session() as session:
            service.set_render_progress(
                session, version_id, render_state="failed", render_error=exc.detail
            )
        for sub in ("pages", "thumbs", "site"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        raise
    except Exception as exc:  # the server's fault, not the file's: the job is tried again
        with open_session() as session:
            service.set_render_progress(
                session, version_id, render_state="failed", render_error=f"{exc}"[:500]
            )
        raise
    with open_session() as session:
        session.execute(delete(ContentPage).where(ContentPage.version_id == version_id))
        session.add_all(
            ContentPage(
                version_id=version_id, number=p.number, text=p.text, width=p.width, height=p.height
            )
            for p in rendered
        )
        service.set_render_progress(
            session,
            version_id,
            render_state="ready",
            render_done=len(rendered),
            page_count=len(rendered),
        )


@jobs.periodic(60)
def expire_content() -> None:
    with new_session() as session, session.begin():
        audit.bind_actor(session, None, "worker")
        n = review.expire_due(session)
        review.supersede_due(session)
    if n:
        log.info("%d content version(s) expired", n)


@jobs.periodic(3600)
def sweep_orphan_files() -> None:
    """Remove folders left by uploads whose transaction rolled back."""
    root = get_settings().content_dir
    if not root.is_dir():
        return
    with new_session(write=False) as session:
        known = {str(i) for i in session.scalars(select(ContentVersion.id))}
    cutoff = time.time() - 3600  # never race an upload that has not committed yet
    incoming = root / ".incoming"
    if incoming.is_dir():  # copies of uploads whose process died half-way
        for f in incoming.iterdir():
            if f.is_file() and f.stat().st_mtime < cutoff:
                f.unlink(missing_ok=True)
    for d in root.iterdir():
        if d.is_dir() and d.name.isdigit() and d.name not in known and d.stat().st_mtime < cutoff:
            shutil.rmtree(d, ignore_errors=True)
