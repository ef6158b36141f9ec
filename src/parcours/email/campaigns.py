"""Campaigns: marketing sends one approved email template to every HCP of a target list.

The same rules as a rep's send apply to each HCP (the gates: template, recipient, consent,
frequency); a refused HCP is counted under the first rule that stops it. The job works in
batches, one transaction each, and records its progress after every batch. It can be run
again after a crash: an HCP that already has a message of this campaign is not written to
twice (a unique constraint on (campaign_id, account_id) makes sure of it).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from parcours.accounts.models import Account, TargetList, TargetListEntry
from parcours.content import service as content
from parcours.content.models import ContentVersion
from parcours.core import audit, jobs
from parcours.core.db import new_session
from parcours.core.errors import Forbidden, Invalid, NotFound
from parcours.core.models import Role, User
from parcours.core.schemas import Strict
from parcours.email import service
from parcours.email.models import Campaign, EmailMessage

STARTERS = (Role.marketing, Role.admin)
BATCH = 500
JOB = "email.campaign"


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- API shapes


class CampaignIn(Strict):
    """A target list, an approved template and the choices a rep would fill; nothing else."""

    target_list_id: int = Field(ge=1, strict=True)
    template_id: int = Field(ge=1, strict=True)
    phrase: str | None = Field(default=None, max_length=2000)
    date: str | None = Field(default=None, max_length=10)
    content_version_id: int | None = Field(default=None, ge=1, strict=True)

    def raw(self) -> dict:
        return self.model_dump(exclude={"target_list_id", "template_id"}, exclude_none=True)


class CampaignRead(BaseModel):
    id: int
    target_list_id: int
    template_id: int
    state: str
    total: int
    queued: int
    refused: dict[str, int]
    created_at: datetime
    finished_at: datetime | None


def progress(campaign: Campaign) -> CampaignRead:
    return CampaignRead(
        id=campaign.id,
        target_list_id=campaign.target_list_id,
        template_id=campaign.version_id,
        state=campaign.state,
        total=campaign.total,
        queued=campaign.queued_count,
        refused=json.loads(campaign.refused or "{}"),
        created_at=campaign.created_at,
        finished_at=campaign.finished_at,
    )


# ---------------------------------------------------------------- starting


def _require_starter(user: User) -> None:
    if user.role not in STARTERS:
        raise Forbidden("Only marketing sends campaigns.")


def _hcps(target_list_id: int):
    return (
        select(Account.id)
        .join(TargetListEntry, TargetListEntry.account_id == Account.id)
        .where(TargetListEntry.target_list_id == target_list_id, Account.kind == "hcp")
    )


def _count(session: Session, target_list_id: int) -> int:
    return session.scalar(select(func.count()).select_from(_hcps(target_list_id).subquery()))


def start(
    session: Session, user: User, target_list_id: int, version_id: int, raw: dict
) -> Campaign:
    """Check the template and the choices once, then queue the mass send."""
    _require_starter(user)
    if session.get(TargetList, target_list_id) is None:
        raise NotFound(f"Target list {target_list_id} does not exist.")
    version = session.get(ContentVersion, version_id)
    if version is None or version.kind != "email" or not content.can_see(session, user, version):
        raise NotFound(f"Email template {version_id} is not available to you.")
    if version.state != "approved" or not content.presentable(session, version):
        raise Invalid("This template is not approved and valid today.", field="template_id")
    service._values(session, user, version, raw)  # Invalid names the field
    kept = {k: raw[k] for k in service.VALUE_KEYS if raw.get(k) is not None}
    if isinstance(kept.get("date"), date):
        kept["date"] = kept["date"].isoformat()
    campaign = Campaign(
        version_id=version.id,
        target_list_id=target_list_id,
        created_by=user.id,
        values=json.dumps(kept, ensure_ascii=False),
        state="queued",
        total=_count(session, target_list_id),
        queued_count=0,
        refused="{}",
    )
    session.add(campaign)
    session.flush()
    jobs.enqueue(session, JOB, {"campaign_id": campaign.id})
    return campaign


def get(session: Session, user: User, campaign_id: int) -> Campaign:
    _require_starter(user)
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    return campaign


# ---------------------------------------------------------------- the job


def _begin(campaign_id: int) -> bool:
    """queued/running/failed → running with fresh counters; False when there is nothing to do."""
    with new_session() as session, session.begin():
        campaign = session.get(Campaign, campaign_id, with_for_update=True)
        if campaign is None or campaign.state == "done":
            return False
        audit.bind_actor(session, campaign.created_by, f"campaign {campaign.id}")
        campaign.state = "running"
        campaign.total = _count(session, campaign.target_list_id)
        # counted again from the start: HCPs already written to count as queued
        campaign.queued_count = 0
        campaign.refused = "{}"
        return True


def _batch(campaign_id: int, after: int) -> int | None:
    """One batch of HCPs after account id `after`, committed; the last id, None when done."""
    with new_session() as session, session.begin():
        campaign = session.get(Campaign, campaign_id, with_for_update=True)
        audit.bind_actor(session, campaign.created_by, f"campaign {campaign.id}")
        ids = list(
            session.scalars(
                _hcps(campaign.target_list_id)
                .where(Account.id > after)
                .order_by(Account.id)
                .limit(BATCH)
            )
        )
        if not ids:
            return None
        user = session.get(User, campaign.created_by)
        version = session.get(ContentVersion, campaign.version_id)
        done = set(
            session.scalars(
                select(EmailMessage.account_id).where(
                    EmailMessage.campaign_id == campaign.id, EmailMessage.account_id.in_(ids)
                )
            )
        )
        refused: dict[str, int] = json.loads(campaign.refused or "{}")
        queued = len(done)
        todo = list(
            session.scalars(
                select(Account)
                .where(Account.id.in_([i for i in ids if i not in done]))
                .order_by(Account.id)
            )
        )
        found = service.gates_many(session, version, [(a, None) for a in todo])
        messages = []
        raw = json.loads(campaign.values or "{}")
        for account, refusals in zip(todo, found, strict=True):
            if refusals:
                rule = refusals[0].rule
                refused[rule] = refused.get(rule, 0) + 1
                continue
            messages.append(
                service.composed(session, user, account, version, raw, campaign_id=campaign.id)
            )
        session.add_all(messages)
        session.flush()
        jobs.enqueue_many(
            session, "email.send", [({"message_id": m.id}, m.send_after) for m in messages]
        )
        queued += len(messages)
        campaign.queued_count += queued
        campaign.refused = json.dumps(refused, sort_keys=True)
        return ids[-1]


def _finish(campaign_id: int, state: str) -> None:
    with new_session() as session, session.begin():
        campaign = session.get(Campaign, campaign_id, with_for_update=True)
        if campaign is None:
            return
        audit.bind_actor(session, campaign.created_by, f"campaign {campaign.id}")
        campaign.state = state
        campaign.finished_at = _now()


def run(campaign_id: int) -> None:
    """The campaign job: every HCP of the list through the gates, batch by batch."""
    if not _begin(campaign_id):
        return
    try:
        after = 0
        while (last := _batch(campaign_id, after)) is not None:
            after = last
    except Exception:
        _finish(campaign_id, "failed")  # the job is retried: a re-run resumes it
        raise
    _finish(campaign_id, "done")
