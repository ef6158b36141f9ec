"""JSON routes for accounts (search, detail, timeline), territories and alignments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from parcours.accounts import service
from parcours.accounts.schemas import (
    AccountAlignmentCreate,
    AccountDetail,
    AccountPage,
    AccountRead,
    AffiliationRead,
    AlignmentRead,
    TerritoryCreate,
    TerritoryRead,
    UserAlignmentCreate,
)
from parcours.activities import service as activities
from parcours.activities.schemas import ActivityPage, activity_read
from parcours.core.deps import ApiUser, SessionDep, writes_on_get

router = APIRouter()


def account_read(account, cls=AccountRead, **extra):
    return cls.model_validate(
        {
            **{c: getattr(account, c) for c in AccountRead.model_fields if hasattr(account, c)},
            "display_name": service.display_name(account),
            **extra,
        }
    )


@router.get("/accounts", response_model=AccountPage, tags=["accounts"])
def list_accounts(
    user: ApiUser,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=100, description="name prefix or identifier")] = None,
    kind: Annotated[str | None, Query(pattern="^(hcp|hco)$")] = None,
    specialty: Annotated[str | None, Query(max_length=80)] = None,
    city: Annotated[str | None, Query(max_length=100)] = None,
    segment: Annotated[str | None, Query(max_length=20)] = None,
    territory_id: int | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 25,
):
    filters = service.SearchFilters(
        q=q, kind=kind, specialty=specialty, city=city, segment=segment, territory_id=territory_id
    )
    page = service.search_accounts(session, user, filters, cursor=cursor, limit=limit)
    return AccountPage(items=[account_read(a) for a in page.items], next_cursor=page.next_cursor)


@router.get(
    "/accounts/export.csv",
    tags=["accounts"],
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
@writes_on_get
def export_accounts(
    user: ApiUser,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=100)] = None,
    kind: Annotated[str | None, Query(pattern="^(hcp|hco)$")] = None,
    specialty: Annotated[str | None, Query(max_length=80)] = None,
    city: Annotated[str | None, Query(max_length=100)] = None,
    segment: Annotated[str | None, Query(max_length=20)] = None,
    territory_id: int | None = None,
):
    """The accounts a search finds, as CSV (at most 100,000 rows), scoped like the search."""
    filters = service.SearchFilters(
        q=q, kind=kind, specialty=specialty, city=city, segment=segment, territory_id=territory_id
    )
    body = service.export_accounts(session, user, filters)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="accounts.csv"'},
    )


@router.get("/accounts/{account_id}", response_model=AccountDetail, tags=["accounts"])
def get_account(account_id: int, user: ApiUser, session: SessionDep):
    p = service.profile(session, user, account_id)
    return account_read(
        p.account,
        AccountDetail,
        segment=p.segment.code if p.segment else None,
        addresses=p.addresses,
        identifiers=p.identifiers,
        affiliations=[
            AffiliationRead(
                account_id=other.id,
                display_name=service.display_name(other),
                role=aff.role,
                is_primary=aff.is_primary,
            )
            for aff, other in p.affiliations
        ],
        territory_ids=[t.id for t in p.territories],
    )


@router.get("/accounts/{account_id}/timeline", response_model=ActivityPage, tags=["accounts"])
def account_timeline(
    account_id: int,
    user: ApiUser,
    session: SessionDep,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    page = activities.timeline(
        session, user, account_id, cursor=cursor, limit=limit, channel=channel
    )
    return ActivityPage(items=[activity_read(a) for a in page.items], next_cursor=page.next_cursor)


@router.get("/territories", response_model=list[TerritoryRead], tags=["territories"])
def list_territories(user: ApiUser, session: SessionDep):
    return [TerritoryRead.model_validate(t) for t in service.list_territories(session, user)]


@router.post("/territories", response_model=TerritoryRead, status_code=201, tags=["territories"])
def create_territory(body: TerritoryCreate, user: ApiUser, session: SessionDep):
    return TerritoryRead.model_validate(
        service.create_territory(session, user, **body.model_dump())
    )


@router.get(
    "/territories/{territory_id}/alignments",
    response_model=list[AlignmentRead],
    tags=["territories"],
)
def territory_alignments(territory_id: int, user: ApiUser, session: SessionDep):
    from parcours.core.deps import require

    require(user, "admin")
    service.get_territory(session, territory_id)
    rows = [
        AlignmentRead(id=a.id, territory_id=a.territory_id, account_id=a.account_id)
        for a, _ in service.account_alignments(session, territory_id)
    ]
    rows += [
        AlignmentRead(id=a.id, territory_id=a.territory_id, user_id=a.user_id)
        for a, _, _ in service.user_alignments(session, territory_id)
    ]
    return rows


@router.post(
    "/alignments/accounts", response_model=AlignmentRead, status_code=201, tags=["territories"]
)
def align_account(body: AccountAlignmentCreate, user: ApiUser, session: SessionDep):
    row = service.align_account(session, user, body.account_id, body.territory_id)
    return AlignmentRead(id=row.id, territory_id=row.territory_id, account_id=row.account_id)


@router.delete("/alignments/accounts/{alignment_id}", status_code=204, tags=["territories"])
def unalign_account(alignment_id: int, user: ApiUser, session: SessionDep):
    service.unalign(session, user, "account", alignment_id)
    return Response(status_code=204)


@router.post(
    "/alignments/users", response_model=AlignmentRead, status_code=201, tags=["territories"]
)
def align_user(body: UserAlignmentCreate, user: ApiUser, session: SessionDep):
    row = service.align_user(session, user, body.user_id, body.territory_id)
    return AlignmentRead(id=row.id, territory_id=row.territory_id, user_id=row.user_id)


@router.delete("/alignments/users/{alignment_id}", status_code=204, tags=["territories"])
def unalign_user(alignment_id: int, user: ApiUser, session: SessionDep):
    service.unalign(session, user, "user", alignment_id)
    return Response(status_code=204)
