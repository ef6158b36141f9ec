"""JSON routes for consent: an HCP's decisions and history, capture, and the consent texts."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response
from sqlalchemy import select

from parcours.consent import gdpr, service
from parcours.consent.models import ConsentText
from parcours.consent.schemas import (
    ConsentCapture,
    ConsentDecisionRead,
    ConsentOverview,
    ConsentRecordRead,
    ConsentTextCreate,
    ConsentTextRead,
    ErasureRequest,
)
from parcours.core.deps import ApiUser, SessionDep

router = APIRouter()


@router.get("/accounts/{account_id}/consent", response_model=ConsentOverview, tags=["consent"])
def get_consent(account_id: int, user: ApiUser, session: SessionDep):
    history = service.history(session, user, account_id)  # checks the HCP is readable first
    decisions = service.summary(session, account_id)
    return ConsentOverview(
        summary={
            ch: ConsentDecisionRead(
                allowed=d.allowed, reason=d.reason, record_id=d.record.id if d.record else None
            )
            for ch, d in decisions.items()
        },
        history=[ConsentRecordRead.model_validate(r) for r in history],
    )


@router.post(
    "/accounts/{account_id}/consent",
    response_model=ConsentRecordRead,
    status_code=201,
    tags=["consent"],
)
def capture_consent(account_id: int, body: ConsentCapture, user: ApiUser, session: SessionDep):
    record = service.capture(session, user, account_id, **body.model_dump())
    return ConsentRecordRead.model_validate(record)


@router.get("/consent-texts", response_model=list[ConsentTextRead], tags=["consent"])
def list_texts(user: ApiUser, session: SessionDep, all_versions: bool = False):
    """The latest version of each wording, or every version with all_versions=true."""
    if all_versions:
        rows = session.scalars(
            select(ConsentText).order_by(ConsentText.code, ConsentText.version.desc())
        )
    else:
        rows = service.texts(session)
    return [ConsentTextRead.model_validate(t) for t in rows]


@router.post("/consent-texts", response_model=ConsentTextRead, status_code=201, tags=["consent"])
def add_text(body: ConsentTextCreate, user: ApiUser, session: SessionDep):
    text = service.add_text(session, user, body.code, body.language, body.body)
    return ConsentTextRead.model_validate(text)


@router.get("/accounts/{account_id}/gdpr-export", tags=["gdpr"])
def gdpr_export(account_id: int, user: ApiUser, session: SessionDep):
    """Everything held on one HCP, as a JSON attachment (admins; the export is audited)."""
    data = gdpr.export_hcp(session, user, account_id)
    body = json.dumps(data, ensure_ascii=False, indent=1, default=str)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="hcp-{account_id}.json"'},
    )


@router.post("/accounts/{account_id}/gdpr-erase", tags=["gdpr"])
def gdpr_erase(account_id: int, body: ErasureRequest, user: ApiUser, session: SessionDep):
    """Pseudonymise an HCP on request; their personal data leaves the audit trail too."""
    account = gdpr.erase_hcp(session, user, account_id, body.reason)
    return {"id": account.id, "status": account.status}
