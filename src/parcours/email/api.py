"""JSON routes for Approved Email: an HCP's sendable templates, preview, send."""

from __future__ import annotations

from fastapi import APIRouter

from parcours.accounts import service as accounts
from parcours.content import storage as content_storage
from parcours.content.player import Body as RawBody
from parcours.core.deps import ApiUser, SessionDep, require
from parcours.core.errors import Invalid
from parcours.core.models import Role
from parcours.email import bounces, campaigns, service, templating
from parcours.email.schemas import (
    EmailMessageRead,
    EmailPreviewRead,
    EmailTemplateRead,
    EmailValues,
    RefusalRead,
)

router = APIRouter()


def template_tokens(version) -> list[str]:
    """The tokens an approved template uses, in order (its file is locked once signed)."""
    html = content_storage.original_path(version).read_text(encoding="utf-8")
    return list(dict.fromkeys(templating.TOKEN.findall(html)))


@router.get(
    "/accounts/{account_id}/email-templates",
    response_model=list[EmailTemplateRead],
    tags=["email"],
)
def list_templates(account_id: int, user: ApiUser, session: SessionDep):
    accounts.require_readable(session, user, account_id)
    return [
        EmailTemplateRead(
            id=v.id,
            title=v.title,
            content_type=v.content_type,
            language=v.language,
            valid_until=v.valid_until,
            tokens=template_tokens(v),
            phrases=list(v.key_messages or []),
        )
        for v in service.templates_for(session, user)
    ]


@router.post(
    "/accounts/{account_id}/emails/preview", response_model=EmailPreviewRead, tags=["email"]
)
def preview(account_id: int, body: EmailValues, user: ApiUser, session: SessionDep):
    out = service.preview(session, user, account_id, body.template_id, body.raw())
    refusals = [RefusalRead(rule=r.rule, message=r.message) for r in out["refusals"]]
    return EmailPreviewRead(
        subject=out["subject"], html=out["html"], text=out["text"], refusals=refusals
    )


@router.post(
    "/accounts/{account_id}/emails",
    response_model=EmailMessageRead,
    status_code=201,
    tags=["email"],
)
def send(account_id: int, body: EmailValues, user: ApiUser, session: SessionDep):
    """Queue an approved email; 409 names the rule that refuses it, 422 a bad value."""
    return service.send(
        session, user, account_id, body.template_id, body.raw(), after_call_id=body.after_call_id
    )


@router.post("/email/bounces", tags=["email"])
def bounces_in(user: ApiUser, session: SessionDep, raw: RawBody) -> dict[str, int]:
    """A DSN (message/rfc822 or text/plain body, at most 1 MB), read onto the timelines."""
    require(user, Role.admin)
    if len(raw) > bounces.MAX_BYTES:
        raise Invalid("The report is over 1 MB.", field="message")
    return bounces.apply(session, bounces.parse_dsn(raw))


@router.post("/campaigns", response_model=campaigns.CampaignRead, status_code=201, tags=["email"])
def start_campaign(body: campaigns.CampaignIn, user: ApiUser, session: SessionDep):
    """Marketing: send an approved template to a target list; the gates apply to each HCP."""
    campaign = campaigns.start(session, user, body.target_list_id, body.template_id, body.raw())
    return campaigns.progress(campaign)


@router.get("/campaigns/{campaign_id}", response_model=campaigns.CampaignRead, tags=["email"])
def campaign_progress(campaign_id: int, user: ApiUser, session: SessionDep):
    """Progress of a campaign: total, queued, refused by rule, state."""
    return campaigns.progress(campaigns.get(session, user, campaign_id))
