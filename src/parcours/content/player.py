"""The CLM player in the browser: choosing content for a call, presenting it, recording slides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from jinja2 import FileSystemLoader
from pydantic import ValidationError
from sqlalchemy import select

from parcours.accounts import service as accounts
from parcours.accounts.models import Account, Product
from parcours.app import problem
from parcours.content import clm
from parcours.content.schemas import SlideEventBatch
from parcours.core.deps import PageUser, SessionDep
from parcours.core.errors import DomainError, Invalid
from parcours.core.i18n import translate
from parcours.web.pages import Form, flash, redirect
from parcours.web.render import language, render, templates

router = APIRouter()

_TEMPLATES = str(Path(__file__).resolve().parent / "templates")
if not any(
    _TEMPLATES in getattr(loader, "searchpath", ()) for loader in templates.env.loader.loaders
):
    # the content domain's templates (web.render lists the domains it knows at import time)
    templates.env.loader.loaders.append(FileSystemLoader(_TEMPLATES))

BATCH_LIMIT = 1000

# Why the services refuse, as catalogue keys: the player says it in the rep's language.
_REASONS: tuple[tuple[str, str], ...] = (
    ("withdrawn", "clm.reason.withdrawn"),
    ("expired", "clm.reason.expired"),
    ("not valid yet", "clm.reason.not_yet"),
    ("no longer matches", "clm.reason.tampered"),
    ("not approved for your country", "clm.reason.country"),
    ("not approved", "clm.reason.not_approved"),
    ("not available to you", "clm.reason.unavailable"),
    ("submitted and locked", "clm.reason.submitted"),
    ("Only the rep who owns", "clm.reason.not_owner"),
    ("outside your territories", "clm.reason.call_missing"),
    ("Only reps record", "clm.reason.role"),
    ("No slide was recorded", "clm.reason.nothing_recorded"),
)


def reason_text(lang: str, detail: str) -> str:
    """A service's refusal in the user's language (as written when the catalogue lacks it)."""
    for needle, key in _REASONS:
        if needle in (detail or ""):
            return translate(lang, key)
    return detail


def _refused(request: Request, exc: DomainError, activity_id: int):
    lang = language(request)
    ctx = {"reason": reason_text(lang, exc.detail), "activity_id": activity_id, "code": exc.status}
    return render(request, "content/_player_refused.html", ctx, status=exc.status)


def _problem(request: Request, exc: DomainError) -> JSONResponse:
    detail = reason_text(language(request), exc.detail)
    return problem(exc.status, exc.title, detail, exc.errors)


async def raw_body(request: Request) -> bytes:
    """The request body, read on the event loop before the (sync) route runs."""
    return await request.body()


Body = Annotated[bytes, Depends(raw_body)]


# --- choosing what to present -----------------------------------------------------------------


@router.get("/calls/{activity_id}/present")
def choose(request: Request, activity_id: int, user: PageUser, session: SessionDep):
    """The approved content this rep may show in this call, as large cards."""
    try:
        act = clm.presenting_call(session, user, activity_id)
    except DomainError as exc:
        return _refused(request, exc, activity_id)
    offered = clm.offered(session, user, act)
    account = session.get(Account, act.account_id)
    planned = set(act.product_ids or [])
    ctx = {
        "act": act,
        "account": account,
        "name": accounts.display_name(account),
        "offered": offered,
        "planned": {v.id for v in offered if planned.intersection(v.product_ids or [])},
        "product_names": dict(session.execute(select(Product.id, Product.name)).all()),
    }
    return render(request, "content/present.html", ctx)


# --- the player --------------------------------------------------------------------------------


@router.get("/present/{activity_id}/{version_id}")
def player(
    request: Request, activity_id: int, version_id: int, user: PageUser, session: SessionDep
):
    """Full-screen slides; the browser records what is shown and sends it (see player.js)."""
    try:
        act, version = clm.open_player(session, user, activity_id, version_id)
    except DomainError as exc:
        return _refused(request, exc, activity_id)
    lang = language(request)
    messages = {
        k: translate(lang, f"clm.js.{k}")
        for k in (
            "offline",
            "offline_one",
            "pending",
            "pending_one",
            "login",
            "refused",
            "sending",
            "sent_later",
            "sent_later_one",
            "slide",
        )
    }
    config = {
        "activityId": act.id,
        "versionId": version.id,
        "pageCount": version.page_count,
        "eventsUrl": f"/present/{act.id}/events",
        "statusUrl": f"/present/{act.id}/{version.id}/status",
        "pageUrl": f"/content/versions/{version.id}/pages/",
        "thumbUrl": f"/content/versions/{version.id}/thumbs/",
        "messages": messages,
    }
    ctx = {"act": act, "version": version, "config": config}
    return render(request, "content/player.html", ctx)


@router.get("/present/{activity_id}/{version_id}/status")
def status(
    request: Request, activity_id: int, version_id: int, user: PageUser, session: SessionDep
):
    """What an open player polls: may this content still be shown in this call?"""
    lang = language(request)
    try:
        clm.presenting_call(session, user, activity_id)
        out = clm.player_status(session, user, version_id)
    except DomainError as exc:
        if exc.status != 409:
            return _problem(request, exc)
        out = {"presentable": False, "state": "call_locked", "reason": exc.detail}
    out["message"] = reason_text(lang, out["reason"]) if out["reason"] else None
    return out


@router.post("/present/{activity_id}/events")
def events(request: Request, activity_id: int, user: PageUser, session: SessionDep, body: Body):
    """Record slide events of this call; answers which event ids are now stored, so the
    player forgets exactly those (sending one twice is harmless: it counts once)."""
    try:
        batch = SlideEventBatch.model_validate(json.loads(body or b"null"))
    except (ValueError, ValidationError) as exc:
        errors = (
            [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors()
            ]
            if isinstance(exc, ValidationError)
            else [{"field": "body", "message": "The body is not JSON."}]
        )
        return problem(422, "Invalid input", errors[0]["message"], errors)
    sent = [e.model_dump() for e in batch.events]
    foreign = [i for i, e in enumerate(sent) if e["activity_id"] != activity_id]
    if foreign:
        message = "Every event of this batch belongs to this call."
        errors = [{"field": f"events.{i}.activity_id", "message": message} for i in foreign]
        return problem(422, "Invalid input", message, errors)
    try:
        clm.presenting_call(session, user, activity_id)
        result = clm.ingest(session, user, sent)
        statuses = {
            str(vid): clm.player_status(session, user, vid)
            for vid in dict.fromkeys(e["version_id"] for e in sent)
        }
    except DomainError as exc:
        return _problem(request, exc)
    lang = language(request)
    for st in statuses.values():
        st["message"] = reason_text(lang, st["reason"]) if st["reason"] else None
    refused = {r["event_id"] for r in result["rejected"]}
    return {
        **result,
        # stored now or before: everything sent that was not rejected
        "stored": [e["event_id"] for e in sent if e["event_id"] not in refused],
        "status": statuses,
    }


@router.post("/present/{activity_id}/finish")
def finish(request: Request, activity_id: int, user: PageUser, session: SessionDep, form: Form):
    """End of the presentation: the call report is prefilled from what was shown."""
    try:
        with session.begin_nested():
            clm.prefill_call(session, user, activity_id)
    except Invalid:
        flash(request, "clm.flash.nothing_recorded", "error")
        return redirect(f"/calls/{activity_id}")
    except DomainError as exc:
        return _refused(request, exc, activity_id)
    flash(request, "clm.flash.prefilled")
    return redirect(f"/calls/{activity_id}")
