"""GDPR requests about one HCP: export everything held on them, or erase them.

Erasure pseudonymises rather than deletes: the account row stays (activities and consent
history point at it), and the consent records stay without their email address, because the
opt-out history is what keeps the lab from contacting the HCP again.
"""

from __future__ import annotations

from sqlalchemy import and_, inspect, or_, select, update
from sqlalchemy.orm import Session

from parcours.accounts.models import (
    Account,
    AccountTerritory,
    Address,
    Affiliation,
    Identifier,
    Segment,
    TargetList,
    TargetListEntry,
)
from parcours.accounts.text import search_key
from parcours.activities.models import Activity, Amendment, Attendee, Task
from parcours.consent.models import ConsentRecord, ConsentText
from parcours.content.models import SlideView
from parcours.core import audit
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import AuditRecord, Role, User

# audit entities that belong to an HCP, and the payload key that names the HCP
CHILD_ENTITIES = {
    "account_identifiers": "account_id",
    "addresses": "account_id",
    "consent_records": "account_id",
    "account_territories": "account_id",
    "target_list_entries": "account_id",
    "affiliations": "hcp_id",
    "tasks": "account_id",
}
# whose audit payload is personal data through and through: blanked whole on erasure
ERASED_ENTITIES = ("account_identifiers", "addresses", "consent_records")


def _row(obj) -> dict:
    """A mapped row as JSON-ready data."""
    return {c.key: audit._plain(getattr(obj, c.key)) for c in inspect(obj).mapper.column_attrs}


def _require_admin(user: User) -> None:
    if user.role != Role.admin:
        raise Forbidden("Only administrators handle GDPR requests.")


def _hcp(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None or account.kind != "hcp":
        raise NotFound("No such HCP.")
    return account


def _audit_about(account_id: int, entities=tuple(CHILD_ENTITIES)):
    """Audit records about the account itself or a row of it (found by its payload)."""
    clauses = [and_(AuditRecord.entity == "accounts", AuditRecord.entity_id == str(account_id))]
    for entity in entities:
        key = CHILD_ENTITIES[entity]
        clauses.append(
            and_(
                AuditRecord.entity == entity,
                or_(
                    AuditRecord.after[key].as_integer() == account_id,
                    AuditRecord.before[key].as_integer() == account_id,
                ),
            )
        )
    return or_(*clauses)


def _activity_ids(session: Session, account_id: int) -> list[int]:
    attended = select(Attendee.activity_id).where(Attendee.account_id == account_id)
    return list(
        session.scalars(
            select(Activity.id)
            .where(or_(Activity.account_id == account_id, Activity.id.in_(attended)))
            .order_by(Activity.id)
        )
    )


def export_hcp(session: Session, user: User, account_id: int) -> dict:
    """Everything held on one HCP, as JSON-ready data (admins only)."""
    _require_admin(user)
    account = _hcp(session, account_id)

    def rows(stmt) -> list[dict]:
        return [_row(r) for r in session.scalars(stmt)]

    consents = list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.account_id == account_id)
            .order_by(ConsentRecord.captured_at, ConsentRecord.id)
        )
    )
    text_ids = sorted({c.text_id for c in consents if c.text_id is not None})
    activity_ids = _activity_ids(session, account_id)
    amendments: dict[int, list[dict]] = {}
    for amendment in session.scalars(
        select(Amendment).where(Amendment.activity_id.in_(activity_ids)).order_by(Amendment.id)
    ):
        amendments.setdefault(amendment.activity_id, []).append(_row(amendment))
    activities = [
        {**_row(a), "amendments": amendments.get(a.id, [])}
        for a in session.scalars(
            select(Activity).where(Activity.id.in_(activity_ids)).order_by(Activity.start_at)
        )
    ]
    entries = [
        {**_row(entry), "target_list": name}
        for entry, name in session.execute(
            select(TargetListEntry, TargetList.name)
            .join(TargetList, TargetList.id == TargetListEntry.target_list_id)
            .where(TargetListEntry.account_id == account_id)
            .order_by(TargetListEntry.id)
        )
    ]
    segment = session.get(Segment, account.segment_id) if account.segment_id else None
    data = {
        "account": _row(account),
        "identifiers": rows(
            select(Identifier).where(Identifier.account_id == account_id).order_by(Identifier.id)
        ),
        "addresses": rows(
            select(Address).where(Address.account_id == account_id).order_by(Address.id)
        ),
        "affiliations": rows(
            select(Affiliation)
            .where(or_(Affiliation.hcp_id == account_id, Affiliation.hco_id == account_id))
            .order_by(Affiliation.id)
        ),
        "territories": rows(
            select(AccountTerritory)
            .where(AccountTerritory.account_id == account_id)
            .order_by(AccountTerritory.id)
        ),
        "segment": _row(segment) if segment else None,
        "target_list_entries": entries,
        "consent_records": [_row(c) for c in consents],
        "consent_texts": rows(
            select(ConsentText).where(ConsentText.id.in_(text_ids)).order_by(ConsentText.id)
        ),
        "activities": activities,
        "tasks": rows(select(Task).where(Task.account_id == account_id).order_by(Task.id)),
        "slide_views": rows(
            select(SlideView).where(SlideView.activity_id.in_(activity_ids)).order_by(SlideView.id)
        ),
        "audit_records": rows(
            select(AuditRecord).where(_audit_about(account_id)).order_by(AuditRecord.seq)
        ),
    }
    audit.note(session, "accounts", str(account_id), "export", "gdpr export")
    return data


def erase_hcp(session: Session, user: User, account_id: int, reason: str) -> Account:
    """Pseudonymise an HCP on request and blank their personal data in the audit trail."""
    _require_admin(user)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("Say why the HCP is erased (the request's reference).", field="reason")
    if len(reason) > 2000:
        raise Invalid("The reason is at most 2,000 characters.", field="reason")
    account = _hcp(session, account_id)
    if account.status == "erased":
        raise Conflict("This HCP is already erased.")

    pseudonym = f"Erased HCP {account_id}"
    account.title = None
    account.first_name = None
    account.last_name = pseudonym
    account.emails = []
    account.phones = []
    account.search_name = search_key(pseudonym)
    account.status = "erased"
    for model in (Identifier, Address):
        for row in session.scalars(select(model).where(model.account_id == account_id)):
            session.delete(row)
    for record in session.scalars(
        select(ConsentRecord).where(
            ConsentRecord.account_id == account_id, ConsentRecord.email.is_not(None)
        )
    ):
        record.email = None
    session.flush()

    # Free text about the HCP in their calls. A submitted call is locked against every ORM
    # write (invariant 3); erasure is the one legal exception, so it goes around the ORM and
    # is recorded by the erasure's own audit record below.
    own = select(Activity.id).where(Activity.account_id == account_id)
    cleared = session.execute(
        update(Activity).where(Activity.id.in_(own), Activity.notes.is_not(None)).values(notes=None)
    ).rowcount
    amended = 0
    for amendment in session.scalars(select(Amendment).where(Amendment.activity_id.in_(own))):
        if isinstance(amendment.changes, dict) and amendment.changes.get("notes"):
            session.execute(
                update(Amendment)
                .where(Amendment.id == amendment.id)
                .values(changes={**amendment.changes, "notes": None})
            )
            amended += 1
    session.expire_all()

    seqs = audit.redact(session, _audit_about(account_id, ERASED_ENTITIES))
    activity_ids = [str(i) for i in session.scalars(own)]
    seqs += audit.redact(
        session,
        and_(AuditRecord.entity == "activities", AuditRecord.entity_id.in_(activity_ids)),
        fields=("notes",),
    )
    amendment_ids = [
        str(i) for i in session.scalars(select(Amendment.id).where(Amendment.activity_id.in_(own)))
    ]
    seqs += audit.redact(
        session,
        and_(AuditRecord.entity == "activity_amendments", AuditRecord.entity_id.in_(amendment_ids)),
        fields=("changes",),
    )
    audit.note(
        session,
        "accounts",
        str(account_id),
        audit.ERASE,
        f"gdpr erasure: {reason}",
        {
            "redacted_seqs": sorted(seqs),
            "activities_cleared": cleared,
            "amendments_cleared": amended,
        },
    )
    return session.get(Account, account_id)
