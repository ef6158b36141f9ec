"""HTML routes for campaigns: marketing starts a mass send of an approved email template to
a target list, and follows its progress (the bar polls a partial while the job works)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from sqlalchemy import select

from parcours.accounts.models import TargetList
from parcours.content.models import ContentVersion
from parcours.core import i18n
from parcours.core.deps import PageUser, SessionDep, require
from parcours.core.errors import Invalid, NotFound
from parcours.core.models import User
from parcours.email import campaigns, service
from parcours.email.api import template_tokens
from parcours.email.models import Campaign
from parcours.email.pages import _defaults, _linkable, _raw, message_text
from parcours.web.pages import Form, form_text, is_id, redirect
from parcours.web.render import language, render

router = APIRouter()

RULES = ("consent", "recipient", "frequency", "template")
FORM_KEYS = ("_csrf", "template_id", "target_list_id")


def _row(session, campaign: Campaign) -> dict:
    """What the list and the progress page show of one campaign."""
    version = session.get(ContentVersion, campaign.version_id)
    target = session.get(TargetList, campaign.target_list_id)
    refused: dict[str, int] = json.loads(campaign.refused or "{}")
    done = campaign.queued_count + sum(refused.values())
    total = campaign.total or 0
    return {
        "campaign": campaign,
        "title": version.title if version else f"#{campaign.version_id}",
        "target": target.name if target else f"#{campaign.target_list_id}",
        "refused": refused,
        "done": done,
        "percent": 100 if total == 0 else min(100, round(100 * done / total)),
        "active": campaign.state in ("queued", "running"),
    }


def _form_ctx(
    session,
    user: User,
    template_id: int | None,
    target_list_id: int | None = None,
    raw: dict | None = None,
    errors: dict | None = None,
) -> dict:
    choices = service.templates_for(session, user)
    chosen = next((v for v in choices if v.id == template_id), None)
    if chosen is None and template_id is None and len(choices) == 1:
        chosen = choices[0]
    ctx: dict = {
        "choices": choices,
        "chosen": chosen,
        "lists": list(session.scalars(select(TargetList).order_by(TargetList.name))),
        "target_list_id": target_list_id,
        "errors": errors or {},
        "tokens": [],
        "links": [],
        "values": raw or {},
    }
    if chosen is not None:
        tokens = template_tokens(chosen)
        links = _linkable(session, user) if "content_link" in tokens else []
        values = raw if raw is not None else _defaults(chosen, tokens, links)
        ctx.update(tokens=tokens, links=links, values=values)
    return ctx


def _page(request: Request, session, user: User, form_ctx: dict, status: int = 200):
    rows = [
        _row(session, c)
        for c in session.scalars(select(Campaign).order_by(Campaign.created_at.desc()).limit(100))
    ]
    return render(
        request, "email/campaigns.html", {"rows": rows, "rules": RULES, **form_ctx}, status=status
    )


@router.get("/campaigns")
def campaigns_page(request: Request, user: PageUser, session: SessionDep, template_id: str = ""):
    require(user, *campaigns.STARTERS)
    chosen = int(template_id) if is_id(template_id) else None
    return _page(request, session, user, _form_ctx(session, user, chosen))


@router.post("/campaigns")
def start(request: Request, user: PageUser, session: SessionDep, form: Form):
    require(user, *campaigns.STARTERS)
    template_id, raw = _raw(form)
    raw.pop("target_list_id", None)
    target = form_text(form, "target_list_id")
    target_list_id = int(target) if is_id(target) else None
    lang = language(request)
    try:
        if target_list_id is None:
            raise Invalid("Choose a target list.", field="target_list_id")
        if template_id is None:
            raise Invalid("Choose an approved template.", field="template_id")
        campaign = campaigns.start(session, user, target_list_id, template_id, raw)
    except (Invalid, NotFound) as exc:
        errors: dict[str, str] = {}
        if isinstance(exc, NotFound):
            field = "target_list_id" if "Target list" in exc.detail else "template_id"
            errors[field] = _error_text(lang, field)
        for e in exc.errors or ([] if errors else [{"field": "_form", "message": exc.detail}]):
            field = e.get("field") or "_form"
            if field in ("target_list_id", "template_id"):
                errors.setdefault(field, _error_text(lang, field))
            else:
                errors.setdefault(field, message_text(lang, e["message"]))
        ctx = _form_ctx(session, user, template_id, target_list_id, raw, errors)
        return _page(request, session, user, ctx, status=exc.status)
    request.session["flash"] = {"key": "campaigns.flash.started", "kind": "success"}
    return redirect(f"/campaigns/{campaign.id}")


def _error_text(lang: str, field: str) -> str:

    key = "campaigns.err.target" if field == "target_list_id" else "campaigns.err.template"
    return i18n.translate(lang, key)


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, campaign_id: int, user: PageUser, session: SessionDep):
    campaign = campaigns.get(session, user, campaign_id)
    ctx = {"row": _row(session, campaign), "rules": RULES}
    return render(request, "email/campaign.html", ctx)


@router.get("/campaigns/{campaign_id}/progress")
def progress_fragment(request: Request, campaign_id: int, user: PageUser, session: SessionDep):
    """The progress partial (HTMX): it keeps polling itself while the campaign works."""
    campaign = campaigns.get(session, user, campaign_id)
    ctx = {"row": _row(session, campaign), "rules": RULES}
    return render(request, "email/campaign_progress.html", ctx)
