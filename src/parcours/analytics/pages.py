"""Dashboard pages: the KPIs for the user's scope, the list behind a figure, exports."""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from parcours.analytics import charts, service
from parcours.core import i18n
from parcours.core.deps import PageUser, SessionDep
from parcours.core.errors import Invalid
from parcours.web.render import add_templates, render
from parcours.web.render import language as render_language

router = APIRouter()
add_templates(__file__)


def _raw(request: Request) -> dict[str, str]:
    return service.raw_filters(request.query_params)


def _query(raw: dict[str, str]) -> str:
    return urlencode({k: v for k, v in raw.items() if v})


@router.get("/analytics")
def dashboard_page(request: Request, user: PageUser, session: SessionDep):
    raw = _raw(request)
    ctx = {"raw": raw, "query": _query(raw), "errors": {}, **service.choices(session, user)}
    try:
        f = service.filters(session, user, raw)
    except Invalid as exc:
        ctx["errors"] = {e["field"]: e["message"] for e in exc.errors} or {"start": exc.detail}
        ctx["view"] = service.view_of(user)
        return render(request, "analytics/dashboard.html", ctx, status=422)
    board = service.dashboard(session, user, f)
    lang = render_language(request)
    specs = charts.charts(board, lambda key, **kw: i18n.translate(lang, key, **kw))
    ctx |= {
        "board": board,
        "view": board.view,
        "f": f,
        "cards": charts.cards(board),
        "charts": specs,
        "chart_data": charts.chart_data(specs),
        "snapshot_at": (
            datetime.fromisoformat(board.snapshot["refreshed_at"])
            if board.snapshot.get("refreshed_at")
            else None
        ),
    }
    return render(request, "analytics/dashboard.html", ctx)


@router.get("/analytics/drill")
def drill_page(
    request: Request,
    user: PageUser,
    session: SessionDep,
    what: str = "touched",
    d_channel: str = "",
    kind: str = "",
    lo: str = "",
    hi: str = "",
    period: str = "",
):
    raw = _raw(request)
    f = service.filters(session, user, raw)
    for name, value in (("lo", lo), ("hi", hi)):
        if value and not value.isdigit():
            raise Invalid("Give a whole number.", field=name)
    try:
        when = date.fromisoformat(period) if period else None
    except ValueError:
        raise Invalid("Give a date as YYYY-MM-DD.", field="period") from None
    result = service.drill(
        session,
        user,
        f,
        what,
        channel=d_channel or None,
        kind=kind or None,
        lo=int(lo) if lo else None,
        hi=int(hi) if hi else None,
        period=when,
    )
    ctx = {
        "raw": raw,
        "query": _query(raw),
        "f": f,
        "result": result,
        "d_channel": d_channel,
        "kind": kind,
        "lo": lo,
        "hi": hi,
        "period": when,
    }
    return render(request, "analytics/drill.html", ctx)


@router.get("/analytics/export/{name}.{fmt}")
def export(request: Request, name: str, fmt: str, user: PageUser, session: SessionDep):
    """One chart's table, for the same filters and scope as the page."""
    if fmt not in ("csv", "parquet"):
        raise Invalid("Export as csv or parquet.", field="format")
    if name not in service.TABLES:
        raise Invalid("Choose a table of the dashboard.", field="table")
    f = service.filters(session, user, _raw(request))
    rows = service.table_rows(service.dashboard(session, user, f), name)
    filename = f"{name}-{f.start}-{f.end}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "csv":
        return Response(service.to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(
        service.to_parquet(rows), media_type="application/vnd.apache.parquet", headers=headers
    )
