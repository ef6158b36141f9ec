"""JSON routes for the KPIs: the same figures, filters and scope as the dashboard pages."""

from __future__ import annotations

from fastapi import APIRouter, Request

from parcours.analytics import service
from parcours.core.deps import ApiUser, SessionDep

router = APIRouter()


@router.get("/kpis", tags=["analytics"])
def kpis(request: Request, user: ApiUser, session: SessionDep) -> dict:
    """The six KPIs for the period and filters given (query string as on /analytics), within
    the caller's scope: the figures, the previous period's, and every chart's table."""
    f = service.filters(session, user, service.raw_filters(request.query_params))
    board = service.dashboard(session, user, f)
    return {
        "period": {"start": f.start, "end": f.end},
        "previous_period": {
            "start": board.previous.filters.start,
            "end": board.previous.filters.end,
        },
        "snapshot_at": board.snapshot.get("refreshed_at"),
        "figures": board.current.headline,
        "previous": board.previous.headline,
        "tables": {name: service.table_rows(board, name) for name in service.TABLES[1:]},
    }
